// firewall_ruleset: the nftables table labctl keeps on a target, rendered from the policy (pure).
// tests/integration/firewall_nft_test.cpp has nft itself check what is rendered here.

#include <catch2/catch.hpp>
#include <string>

#include <labctl/core/error.hpp>
#include <labctl/harden/firewall.hpp>

#include "support.hpp"

using namespace labctl;
using namespace labctl::harden;
using labctl::test::contains;

namespace {

std::string usage_message(const FirewallPolicy& p) {
    std::string message;
    CHECK(test::exit_code_of([&] { firewall_ruleset(p); }, &message) == 2);
    return message;
}

} // namespace

TEST_CASE("the firewall drops by default and accepts loopback, replies, ICMP essentials and SSH",
          "[harden][firewall]") {
    const auto r = firewall_ruleset({});
    CHECK(contains(r, "table inet labctl\ndelete table inet labctl\ntable inet labctl {\n"));
    CHECK(contains(r, "type filter hook input priority filter; policy drop;"));
    CHECK(contains(r, "iif \"lo\" accept"));
    CHECK(contains(r, "ct state established,related accept"));
    CHECK(contains(r, "ct state invalid drop"));
    CHECK(contains(r, "nd-neighbor-solicit"));
    CHECK(contains(r, "packet-too-big"));
    CHECK(contains(r, "udp sport 67 udp dport 68 accept"));
    CHECK(contains(r, "tcp dport 22 accept comment \"ssh\""));
    // Only labctl's own table: nothing that would flush Docker's.
    CHECK_FALSE(contains(r, "flush ruleset"));
}

TEST_CASE("SSH sources are split by family and only they may reach the SSH port",
          "[harden][firewall]") {
    FirewallPolicy p;
    p.ssh_port = 2222;
    p.ssh_sources = {"10.0.0.0/8", "192.0.2.7", "2001:db8::/32"};
    const auto r = firewall_ruleset(p);
    CHECK(contains(r, "ip saddr { 10.0.0.0/8, 192.0.2.7 } tcp dport 2222 accept comment \"ssh\""));
    CHECK(contains(r, "ip6 saddr { 2001:db8::/32 } tcp dport 2222 accept comment \"ssh\""));
    CHECK_FALSE(contains(r, "\n        tcp dport 2222 accept"));
}

TEST_CASE("the stack's ports are opened with their protocol, ranges and why",
          "[harden][firewall]") {
    FirewallPolicy p;
    p.open_ports = {{"tcp", 8080, 0, "compose: frontend"},
                    {"udp", 4000, 4010, "compose: \"quoted\" app"},
                    {"tcp", 9090, 9090, "compose: prometheus"}};
    const auto r = firewall_ruleset(p);
    CHECK(contains(r, "tcp dport 8080 accept comment \"compose: frontend\""));
    CHECK(contains(r, "udp dport 4000-4010 accept comment \"compose: quoted app\""));
    CHECK(contains(r, "tcp dport 9090 accept comment \"compose: prometheus\""));
}

TEST_CASE("a bad source, port, range or protocol is a usage error naming it",
          "[harden][firewall]") {
    FirewallPolicy p;
    p.ssh_sources = {"10.0.0.0/33"};
    CHECK(contains(usage_message(p), "SSH source '10.0.0.0/33' has a bad prefix length"));
    p.ssh_sources = {"example.org"};
    CHECK(contains(usage_message(p), "'example.org' is not an IPv4 or IPv6 address"));
    p.ssh_sources = {"2001:db8::/129"};
    CHECK(contains(usage_message(p), "bad prefix length"));
    p.ssh_sources = {};
    p.open_ports = {{"tcp", 0, 0, "zero"}};
    CHECK(contains(usage_message(p), "port 0 (zero): out of range"));
    p.open_ports = {{"tcp", 9000, 8000, "backwards"}};
    CHECK(contains(usage_message(p), "the range ends before it starts"));
    p.open_ports = {{"sctp", 9000, 0, "sctp"}};
    CHECK(contains(usage_message(p), "unknown protocol 'sctp'"));
    p.open_ports = {};
    p.ssh_port = 70000;
    CHECK(contains(usage_message(p), "out of range"));
}
