#pragma once
// The host firewall labctl keeps on a target (issue #18, first part: the ruleset; applying it with
// an armed revert comes next). One nftables table of labctl's own, `inet labctl`, replaced as a
// whole in one transaction, so Docker's tables and anyone else's are never touched. Its input
// chain drops by default and accepts: loopback, established/related traffic, the ICMP and ICMPv6
// a host needs (neighbour discovery, PMTU, errors, echo), DHCP replies, SSH from the configured
// sources, and the ports the stack publishes on the host. Docker's published ports reach
// containers through its own DNAT and the forward hook, which this input chain does not see; the
// ports are still opened so that what reaches the host's own sockets (docker-proxy, host network)
// keeps answering.

#include <string>
#include <vector>

namespace labctl::harden {

struct FirewallPort {
    std::string protocol = "tcp"; ///< "tcp" or "udp"
    int first = 0;                ///< a port, or the first of a range
    int last = 0;                 ///< the last of a range; 0: a single port
    std::string why;              ///< a comment in the ruleset: "ssh", "compose: frontend"
};

struct FirewallPolicy {
    int ssh_port = 22;
    /// Where SSH may come from: IPv4 or IPv6 addresses or networks ("10.0.0.0/8", "::1").
    /// Empty: from anywhere.
    std::vector<std::string> ssh_sources;
    std::vector<FirewallPort> open_ports; ///< besides SSH
};

/// The ruleset for `nft -f` (pure). Throws Error(usage) naming the bad value for a port outside
/// 1-65535, a range whose last port is below its first, an unknown protocol or a source that is
/// not an IPv4/IPv6 address or network.
std::string firewall_ruleset(const FirewallPolicy& policy);

} // namespace labctl::harden
