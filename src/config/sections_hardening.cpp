// lab.yaml's hardening section: sshd's profile, users and revert delay, and the host parts
// beyond sshd (firewall, fail2ban, auditd, sysctl), each on unless turned off.

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include <labctl/core/text.hpp>

#include "loader_impl.hpp"

namespace labctl::config::detail {

namespace {

const std::vector<std::string> k_profiles{"modern", "compat"};

/// "192.0.2.10", "10.0.0.0/8", "2001:db8::/32": nullopt when fine, else what is wrong.
std::optional<std::string> bad_source(const std::string& text) {
    const auto parsed = parse_address_or_network(text);
    if (parsed.family == 0)
        return std::string("is not an IPv4 or IPv6 address or network");
    if (parsed.bad_prefix)
        return fmt::format("has a bad prefix length (0 to {})", parsed.max_prefix);
    return std::nullopt;
}

/// "9100", "9100/tcp", "60000-60010/udp".
std::optional<PortRule> parse_port_rule(const std::string& text) {
    PortRule r;
    std::string ports = text;
    if (const auto slash = text.find('/'); slash != std::string::npos) {
        r.protocol = text.substr(slash + 1);
        ports = text.substr(0, slash);
        if (r.protocol != "tcp" && r.protocol != "udp")
            return std::nullopt;
    }
    const auto dash = ports.find('-');
    const auto first = parse_u64(ports.substr(0, dash));
    const auto last = dash == std::string::npos ? std::optional<std::uint64_t>(0)
                                                : parse_u64(ports.substr(dash + 1));
    if (!first || !last || *first < 1 || *first > 65535 || *last > 65535 ||
        (dash != std::string::npos && *last < *first))
        return std::nullopt;
    r.first = static_cast<int>(*first);
    r.last = static_cast<int>(*last);
    return r;
}

} // namespace

void Loader::read_hardening(const Mapping& m) {
    auto& h = m_spec.hardening;
    read_string(m, "profile", h.profile,
                choice(k_profiles, "modern: current algorithms only; compat: also older "
                                   "clients"));
    if (const Entry* e = m.get("allow_users")) {
        if (const auto users = m_reader.strings(*e)) {
            record(e->path, e->where, Origin::file);
            for (const auto& u : *users) {
                if (auto p = check_user_name(u.path, u.text))
                    m_sink.error(u.where, std::move(*p));
                else if (std::find(h.allow_users.begin(), h.allow_users.end(), u.text) ==
                         h.allow_users.end())
                    h.allow_users.push_back(u.text);
            }
        }
    }
    if (const Entry* e = m.get("revert_seconds")) {
        if (const auto v = m_reader.integer(*e, "120")) {
            const std::string hint = "the revert must outlive labctl's reconnection check; "
                                     "the default is 120";
            if (*v < 30)
                m_sink.error(e->where, fmt::format("{} must be at least 30, got {}", e->path, *v),
                             hint);
            else if (*v > 3600)
                m_sink.error(e->where, fmt::format("{} must be at most 3600, got {}", e->path, *v),
                             hint);
            else
                h.revert_after = std::chrono::seconds(*v);
        }
    }
    for (const auto& [key, flag] : {std::pair<const char*, bool*>{"fail2ban", &h.fail2ban},
                                    {"auditd", &h.auditd},
                                    {"sysctl", &h.sysctl}})
        if (const Entry* e = m.get(key)) {
            if (const auto v = m_reader.boolean(*e)) {
                *flag = *v;
                record(e->path, e->where, Origin::file);
            }
        }
    if (const Entry* e = m.get("firewall"))
        read_firewall(*e);
}

void Loader::read_firewall(const Entry& e) {
    auto& fw = m_spec.hardening.firewall;
    if (e.value.IsScalar()) {
        if (const auto v = m_reader.boolean(e)) {
            fw.enabled = *v;
            record(e.path, e.where, Origin::file);
        }
        return;
    }
    const auto m = m_reader.mapping(e, &k_firewall_keys,
                                    "e.g. 'firewall: {ssh_sources: [192.0.2.0/24], allow: "
                                    "[9100/tcp]}', or 'firewall: false'");
    if (!m)
        return;
    record(e.path, e.where, Origin::file);
    if (const Entry* en = m->get("enabled"))
        if (const auto v = m_reader.boolean(*en))
            fw.enabled = *v;
    if (const Entry* s = m->get("ssh_sources"))
        if (const auto items = m_reader.strings(*s))
            for (const auto& item : *items) {
                if (const auto bad = bad_source(item.text))
                    m_sink.error(item.where, fmt::format("{} '{}' {}", item.path, item.text, *bad),
                                 "write an address or network: 192.0.2.10, 10.0.0.0/8, "
                                 "2001:db8::/32");
                else
                    fw.ssh_sources.push_back(item.text);
            }
    if (const Entry* a = m->get("allow"))
        if (const auto items = m_reader.strings(*a))
            for (const auto& item : *items) {
                if (const auto rule = parse_port_rule(item.text))
                    fw.allow.push_back(*rule);
                else
                    m_sink.error(item.where,
                                 fmt::format("{} '{}' is not a port, range or protocol labctl "
                                             "opens",
                                             item.path, item.text),
                                 "write PORT[/tcp|/udp] or FIRST-LAST[/tcp|/udp] with ports "
                                 "1-65535, e.g. 9100/tcp");
            }
}

} // namespace labctl::config::detail
