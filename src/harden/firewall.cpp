#include <fmt/format.h>

#include <labctl/core/error.hpp>
#include <labctl/core/text.hpp>
#include <labctl/harden/firewall.hpp>

namespace labctl::harden {

namespace {

/// 4 or 6 for an address or network ("10.0.0.0/8", "2001:db8::/32"); Error(usage) otherwise.
int family_of(const std::string& source) {
    const auto parsed = parse_address_or_network(source);
    if (parsed.family == 0)
        throw usage_error(fmt::format("firewall: SSH source '{}' is not an IPv4 or IPv6 address or "
                                      "network",
                                      source),
                          "write it as 192.0.2.10, 10.0.0.0/8 or 2001:db8::/32");
    if (parsed.bad_prefix)
        throw usage_error(fmt::format("firewall: SSH source '{}' has a bad prefix length", source),
                          fmt::format("a prefix length is 0 to {}", parsed.max_prefix));
    return parsed.family;
}

std::string port_text(const FirewallPort& p) {
    const auto bad = [&](const std::string& what) {
        return usage_error(fmt::format("firewall: port {}{} ({}): {}", p.first,
                                       p.last != 0 ? fmt::format("-{}", p.last) : "", p.why, what),
                           "ports are 1-65535; a range is first-last with last >= first");
    };
    if (p.protocol != "tcp" && p.protocol != "udp")
        throw bad(fmt::format("unknown protocol '{}' (tcp or udp)", p.protocol));
    if (p.first < 1 || p.first > 65535 || p.last < 0 || p.last > 65535)
        throw bad("out of range");
    if (p.last != 0 && p.last < p.first)
        throw bad("the range ends before it starts");
    return p.last != 0 && p.last != p.first ? fmt::format("{}-{}", p.first, p.last)
                                            : std::to_string(p.first);
}

/// nftables comments are double-quoted strings of at most 128 bytes.
std::string comment(const std::string& why) {
    std::string out;
    for (const char c : why)
        if (c != '"' && c != '\\' && static_cast<unsigned char>(c) >= 0x20)
            out += c;
    return fmt::format("comment \"{}\"", out.substr(0, 120));
}

} // namespace

std::string firewall_ruleset(const FirewallPolicy& policy) {
    std::vector<std::string> v4, v6;
    for (const auto& s : policy.ssh_sources)
        (family_of(s) == 4 ? v4 : v6).push_back(s);
    const std::string ssh = port_text({"tcp", policy.ssh_port, 0, "ssh"});

    std::string rules;
    const auto rule = [&rules](const std::string& text) {
        rules += "        " + text + "\n";
    };
    rule("iif \"lo\" accept");
    rule("ct state established,related accept");
    rule("ct state invalid drop");
    // RFC 4890's essentials for a host, and ICMP errors and echo for IPv4.
    rule("ip protocol icmp icmp type { echo-request, destination-unreachable, time-exceeded, "
         "parameter-problem } accept");
    rule("meta l4proto ipv6-icmp icmpv6 type { destination-unreachable, packet-too-big, "
         "time-exceeded, parameter-problem, echo-request, nd-router-advert, "
         "nd-neighbor-solicit, nd-neighbor-advert } accept");
    // DHCP and DHCPv6 replies to the host's own client.
    rule("udp sport 67 udp dport 68 accept comment \"dhcp\"");
    rule("udp sport 547 udp dport 546 accept comment \"dhcpv6\"");
    const auto join = [](const std::vector<std::string>& items) {
        std::string out;
        for (const auto& i : items)
            out += (out.empty() ? "" : ", ") + i;
        return out;
    };
    if (policy.ssh_sources.empty()) {
        rule(fmt::format("tcp dport {} accept {}", ssh, comment("ssh")));
    } else {
        if (!v4.empty())
            rule(fmt::format("ip saddr {{ {} }} tcp dport {} accept {}", join(v4), ssh,
                             comment("ssh")));
        if (!v6.empty())
            rule(fmt::format("ip6 saddr {{ {} }} tcp dport {} accept {}", join(v6), ssh,
                             comment("ssh")));
    }
    for (const auto& p : policy.open_ports)
        rule(fmt::format("{} dport {} accept {}", p.protocol, port_text(p), comment(p.why)));

    // "table" then "delete table": the file replaces labctl's table whether or not it exists, in
    // the one transaction `nft -f` makes of it.
    return fmt::format("# labctl's host firewall: replaced as a whole by labctl harden.\n"
                       "table inet labctl\n"
                       "delete table inet labctl\n"
                       "table inet labctl {{\n"
                       "    chain input {{\n"
                       "        type filter hook input priority filter; policy drop;\n"
                       "{}"
                       "    }}\n"
                       "}}\n",
                       rules);
}

} // namespace labctl::harden
