#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include <labctl/harden/effective.hpp>
#include <labctl/harden/policy.hpp>

namespace labctl::harden {

namespace {

/// `sshd -T` prints one "keyword value" line per setting, and a list keyword (allowusers) once
/// per value (openssh/openssh-portable@V_9_6_P1:servconf.c dump_cfg_strarray): those are joined
/// with spaces.
std::map<std::string, std::string> parse_sshd_t(const std::string& out) {
    std::map<std::string, std::string> values;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
        const auto sp = line.find(' ');
        if (sp == std::string::npos)
            continue;
        const auto key = line.substr(0, sp);
        auto value = line.substr(sp + 1);
        if (auto it = values.find(key); it != values.end())
            it->second += " " + value;
        else
            values.emplace(key, value);
    }
    return values;
}

std::set<std::string> words(const std::string& s) {
    std::set<std::string> out;
    std::istringstream in(s);
    for (std::string w; in >> w;)
        out.insert(w);
    return out;
}

} // namespace

std::vector<std::string> effective_mismatches(const HardenPlan& plan, const std::string& user,
                                              const std::string& sshd_t_output) {
    const auto values = parse_sshd_t(sshd_t_output);
    std::vector<std::string> wrong;
    auto expect = [&](const std::string& key, const std::string& want) {
        auto it = values.find(key);
        const std::string got = it == values.end() ? "(unset)" : it->second;
        if (got != want)
            wrong.push_back(fmt::format("{} is '{}', want '{}'", key, got, want));
    };
    for (const auto& [key, want] : required_settings())
        expect(key, want);
    expect("kexalgorithms", fmt::format("{}", fmt::join(plan.kex, ",")));
    expect("ciphers", fmt::format("{}", fmt::join(plan.ciphers, ",")));
    expect("macs", fmt::format("{}", fmt::join(plan.macs, ",")));
    expect("hostkeyalgorithms", fmt::format("{}", fmt::join(plan.hostkeys, ",")));

    const auto it = values.find("allowusers");
    const std::string allow = it == values.end() ? "" : it->second;
    const auto allowed = words(allow);
    if (!allowed.count(user)) {
        wrong.push_back(fmt::format("allowusers '{}' does not contain {}", allow, user));
        return wrong;
    }
    // AllowUsers "may appear multiple times in sshd_config with each instance appending to the
    // list" (openssh/openssh-portable@V_9_6_P1:sshd_config.5): a later drop-in cannot replace
    // ours but can add users, which the first-value-wins order of sshd_config.d does not stop.
    const std::set<std::string> wanted(plan.allow_users.begin(), plan.allow_users.end());
    if (!wanted.empty() && allowed != wanted) {
        std::vector<std::string> extra;
        std::set_difference(allowed.begin(), allowed.end(), wanted.begin(), wanted.end(),
                            std::back_inserter(extra));
        if (!extra.empty())
            wrong.push_back(fmt::format("allowusers '{}' also allows {} (another file adds "
                                        "AllowUsers lines, which sshd appends to ours)",
                                        allow, fmt::join(extra, " ")));
        else
            wrong.push_back(fmt::format("allowusers is '{}', want '{}'", allow,
                                        fmt::join(plan.allow_users, " ")));
    }
    return wrong;
}

} // namespace labctl::harden
