#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include <labctl/core/error.hpp>
#include <labctl/core/templates.hpp>
#include <labctl/harden/plan.hpp>
#include <labctl/harden/policy.hpp>

namespace labctl::harden {

std::vector<std::string> intersect(const std::vector<std::string>& wanted,
                                   const std::vector<std::string>& available) {
    std::vector<std::string> out;
    for (const auto& w : wanted)
        if (std::find(available.begin(), available.end(), w) != available.end())
            out.push_back(w);
    return out;
}

namespace {

bool contains(const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
}

// policy ∩ target; then at least one must be usable by labctl's own client, or the hardened
// server would refuse labctl.
std::vector<std::string> choose(const std::string& what, const std::vector<std::string>& policy,
                                const TargetFacts& facts, const std::string& facts_key,
                                const std::vector<std::string>& client) {
    auto it = facts.supported.find(facts_key);
    // Without an ssh client on the target there is no `ssh -Q`; sshd -t then rejects anything
    // the server does not know before it is activated.
    std::vector<std::string> chosen =
        it == facts.supported.end() || it->second.empty() ? policy : intersect(policy, it->second);
    if (chosen.empty())
        throw Error(ExitCode::harden,
                    fmt::format("the target's OpenSSH supports none of the {} {}", what,
                                fmt::join(policy, ",")),
                    "use hardening.profile: compat, or update OpenSSH on the target");
    if (!client.empty() && intersect(chosen, client).empty())
        throw usage_error(fmt::format("hardened {} ({}) would leave labctl's own SSH client with "
                                      "no algorithm it supports ({}): it would lock itself out",
                                      what, fmt::join(chosen, ","), fmt::join(client, ",")),
                          "use hardening.profile: compat");
    return chosen;
}

} // namespace

HardenPlan plan(const HardenInput& input, const TargetFacts& facts) {
    if (input.user.empty())
        throw usage_error("hardening needs the SSH user labctl logs in as");
    if (!contains(input.allow_users, input.user))
        throw usage_error(fmt::format("AllowUsers ({}) does not contain '{}', the user labctl logs "
                                      "in as: hardening would lock labctl out",
                                      fmt::join(input.allow_users, " "), input.user),
                          fmt::format("add '{}' to hardening.allow_users", input.user));
    if (facts.dropin_dir.empty())
        throw Error(ExitCode::harden,
                    fmt::format("{} has no 'Include' of a drop-in directory; nothing was changed",
                                facts.main_config),
                    "add 'Include /etc/ssh/sshd_config.d/*.conf' at the top of sshd_config");

    const auto policy = algorithm_policy(input.profile);
    HardenPlan p;
    p.dropin_path = facts.dropin_path();
    p.allow_users = input.allow_users;
    p.kex = choose("key exchange algorithms", policy.kex, facts, "kex", input.client_kex);
    p.ciphers = choose("ciphers", policy.ciphers, facts, "cipher", input.client_ciphers);
    p.macs = choose("MACs", policy.macs, facts, "mac", input.client_macs);
    p.hostkeys =
        choose("host key algorithms", policy.hostkeys, facts, "hostkey", input.client_hostkeys);
    for (const auto& pinned : input.pinned_hostkey_types) {
        const bool allowed = pinned == "ssh-rsa" ? contains(p.hostkeys, "rsa-sha2-512") ||
                                                       contains(p.hostkeys, "rsa-sha2-256")
                                                 : contains(p.hostkeys, pinned);
        if (!allowed)
            throw usage_error(fmt::format("the pinned host key type {} would not be offered after "
                                          "hardening (HostKeyAlgorithms {})",
                                          pinned, fmt::join(p.hostkeys, ",")),
                              "pin an ed25519 host key (labctl provision does) or use compat");
    }
    p.dropin =
        templates::render(templates::load("sshd/01-labctl.conf"),
                          {{"profile", input.profile},
                           {"allow_users", fmt::format("{}", fmt::join(input.allow_users, " "))},
                           {"kex", fmt::format("{}", fmt::join(p.kex, ","))},
                           {"ciphers", fmt::format("{}", fmt::join(p.ciphers, ","))},
                           {"macs", fmt::format("{}", fmt::join(p.macs, ","))},
                           {"hostkeys", fmt::format("{}", fmt::join(p.hostkeys, ","))}});
    p.dropin_changes = !facts.dropin_exists || facts.current_dropin != p.dropin;
    for (const auto& account : input.lock_accounts) {
        auto it = facts.passwd_status.find(account);
        if (it == facts.passwd_status.end() || it->second != "L")
            p.accounts_to_lock.push_back(account);
    }
    return p;
}

} // namespace labctl::harden
