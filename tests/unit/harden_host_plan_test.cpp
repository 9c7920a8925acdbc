// plan_host and the host probe's parser: which parts change, the files they write, the lockout
// guards (labctl's own address always reaches SSH and is never banned) and the Docker-safe kernel
// settings, from facts alone (pure).

#include <catch2/catch.hpp>
#include <string>

#include <labctl/core/encoding.hpp>
#include <labctl/core/error.hpp>
#include <labctl/harden/host_plan.hpp>

#include "support.hpp"

using namespace labctl;
using namespace labctl::harden;
using labctl::test::contains;

namespace {

/// A fresh Debian 12 VM from labctl's image: systemd, Docker, the packages, nothing applied.
HostFacts fresh_vm() {
    HostFacts f;
    f.systemd = true;
    f.docker = true;
    f.packages = {"nftables", "fail2ban", "python3-systemd", "auditd", "procps"};
    f.client_address = "10.0.2.2";
    f.listen_port = 22;
    for (const auto& [key, value] : hardened_sysctl())
        f.sysctl[key] = value == "0" ? "1" : "0";
    f.sysctl.erase("kernel.yama.ptrace_scope"); // a kernel without Yama
    return f;
}

const HostPart& part(const HostPlan& plan, const std::string& name) {
    for (const auto& p : plan.parts)
        if (p.name == name)
            return p;
    FAIL("no part " << name);
    throw std::logic_error("unreachable");
}

/// The facts of the same VM after the plan was applied: every file there, everything live.
HostFacts applied(const HostPlan& plan, HostFacts f) {
    for (const auto& p : plan.parts)
        for (const auto& file : p.files)
            f.file_sha256[file.path] = sha256_hex(file.content);
    f.firewall_live = true;
    f.firewall_live_sha256 = f.firewall_applied_sha256 = std::string(64, 'a');
    f.fail2ban_active = f.sshd_jail = f.auditd_active = true;
    f.audit_rules = 11;
    for (const auto& [key, value] : hardened_sysctl())
        if (f.sysctl.count(key))
            f.sysctl[key] = value;
    return f;
}

} // namespace

TEST_CASE("a fresh VM gets all four parts, the firewall last", "[harden][host]") {
    HostPolicy policy;
    policy.open_ports = {{"tcp", 8080, 0, "compose: frontend"}};
    const auto plan = plan_host(policy, fresh_vm());
    REQUIRE(plan.parts.size() == 4);
    CHECK(plan.parts[0].name == "sysctl");
    CHECK(plan.parts[1].name == "auditd");
    CHECK(plan.parts[2].name == "fail2ban");
    CHECK(plan.parts[3].name == "firewall");
    CHECK(plan.changes());
    CHECK(plan.missing_packages().empty());
    const auto& fw = part(plan, "firewall");
    REQUIRE(fw.files.size() == 2);
    CHECK(fw.files[0].path == k_firewall_file);
    CHECK(contains(fw.files[0].content, "tcp dport 8080 accept comment \"compose: frontend\""));
    CHECK(fw.files[1].path == k_firewall_unit);
    CHECK(contains(fw.files[1].content, "ExecStart=/usr/sbin/nft -f /etc/labctl/firewall.nft"));
    CHECK(contains(fw.activate, "nft -c -f /etc/labctl/firewall.nft && nft -f"));
    CHECK(contains(fw.restore, "nft delete table inet labctl"));
}

TEST_CASE("nothing changes once the plan is applied, and drift is seen", "[harden][host]") {
    const HostPolicy policy;
    const auto plan = plan_host(policy, fresh_vm());
    auto facts = applied(plan, fresh_vm());
    CHECK_FALSE(plan_host(policy, facts).changes());

    SECTION("rules changed behind labctl's back") {
        facts.firewall_live_sha256 = std::string(64, 'b');
        const auto again = plan_host(policy, facts);
        CHECK(part(again, "firewall").changes);
        CHECK_FALSE(part(again, "fail2ban").changes);
    }
    SECTION("a kernel setting reset") {
        facts.sysctl["kernel.kptr_restrict"] = "0";
        CHECK(part(plan_host(policy, facts), "sysctl").changes);
    }
    SECTION("fail2ban stopped") {
        facts.fail2ban_active = false;
        CHECK(part(plan_host(policy, facts), "fail2ban").changes);
    }
    SECTION("an audit rule deleted") {
        facts.audit_rules = 10;
        CHECK(part(plan_host(policy, facts), "auditd").changes);
    }
    SECTION("another port opened") {
        HostPolicy more;
        more.open_ports = {{"udp", 5353, 0, "hardening.firewall.allow"}};
        CHECK(part(plan_host(more, facts), "firewall").changes);
    }
}

TEST_CASE("labctl's own address always reaches SSH and is never banned", "[harden][host]") {
    HostPolicy policy;
    policy.ssh_sources = {"192.0.2.0/24", "2001:db8::/32"};
    const auto plan = plan_host(policy, fresh_vm());
    const auto& rules = part(plan, "firewall").files[0].content;
    CHECK(contains(rules, "ip saddr { 192.0.2.0/24, 10.0.2.2 } tcp dport 22 accept"));
    CHECK(contains(rules, "ip6 saddr { 2001:db8::/32 } tcp dport 22 accept"));
    const auto& jail = part(plan, "fail2ban").files[0].content;
    CHECK(contains(jail, "ignoreip = 127.0.0.1/8 ::1 10.0.2.2\n"));
    CHECK(contains(jail, "backend = systemd\n"));
    CHECK(contains(jail, "banaction = nftables-multiport\n"));
    CHECK(contains(part(plan, "fail2ban").check, "grep -qF '10.0.2.2'"));

    SECTION("sources that list it are kept as written") {
        policy.ssh_sources = {"10.0.2.2"};
        CHECK(contains(part(plan_host(policy, fresh_vm()), "firewall").files[0].content,
                       "ip saddr { 10.0.2.2 } tcp dport 22"));
    }
    SECTION("SSH on another port") {
        policy.ssh_port = 2222;
        const auto p = plan_host(policy, fresh_vm());
        CHECK(contains(part(p, "firewall").files[0].content, "tcp dport 2222 accept"));
        CHECK(contains(part(p, "fail2ban").files[0].content, "port = 2222\n"));
    }
    SECTION("an impossible SSH port is refused") {
        policy.ssh_port = 0;
        CHECK(test::exit_code_of([&] { plan_host(policy, fresh_vm()); }) == 2);
    }
}

TEST_CASE("the kernel settings never turn forwarding off and skip what the kernel lacks",
          "[harden][host]") {
    for (const auto& [key, value] : hardened_sysctl()) {
        CHECK_FALSE(contains(key, "forward"));
        CHECK(key != "kernel.unprivileged_bpf_disabled"); // one-way: no revert
    }
    const auto plan = plan_host({}, fresh_vm());
    const auto& s = part(plan, "sysctl");
    CHECK(contains(s.files[0].content, "kernel.kptr_restrict = 2\n"));
    CHECK_FALSE(contains(s.files[0].content, "ptrace_scope"));
    REQUIRE(s.notes.size() == 1);
    CHECK(contains(s.notes[0], "kernel.yama.ptrace_scope: not in this kernel"));
    CHECK(contains(s.save, "sysctl.before"));
    CHECK(contains(s.check, "[ \"$(sysctl -n kernel.kptr_restrict)\" = '2' ]"));
}

TEST_CASE("auditd watches identities, sshd, sudoers and Docker when it is there",
          "[harden][host]") {
    const auto with_docker = part(plan_host({}, fresh_vm()), "auditd").files[0].content;
    for (const char* rule :
         {"-w /etc/passwd -p wa -k labctl-identity", "-w /etc/shadow -p wa -k labctl-identity",
          "-w /etc/ssh/sshd_config -p wa -k labctl-sshd",
          "-w /etc/sudoers.d -p wa -k labctl-sudoers",
          "-w /run/docker.sock -p rwa -k labctl-docker"})
        CHECK(contains(with_docker, rule));
    auto no_docker = fresh_vm();
    no_docker.docker = false;
    const auto& p = part(plan_host({}, no_docker), "auditd");
    CHECK_FALSE(contains(p.files[0].content, "docker"));
    CHECK(contains(p.check, "-ge 8"));
}

TEST_CASE("parts can be turned off, and missing packages are named", "[harden][host]") {
    HostPolicy policy;
    policy.fail2ban = policy.auditd = policy.sysctl = false;
    auto facts = fresh_vm();
    facts.packages = {"procps"};
    const auto plan = plan_host(policy, facts);
    REQUIRE(plan.parts.size() == 1);
    CHECK(plan.missing_packages() == std::vector<std::string>{"nftables"});
    policy.fail2ban = true;
    CHECK(plan_host(policy, facts).missing_packages() ==
          std::vector<std::string>{"fail2ban", "nftables", "python3-systemd"});
}

TEST_CASE("without systemd the firewall is not persistent and fail2ban is refused",
          "[harden][host]") {
    auto facts = fresh_vm();
    facts.systemd = false;
    HostPolicy policy;
    policy.fail2ban = policy.auditd = false;
    const auto plan = plan_host(policy, facts);
    const auto& fw = part(plan, "firewall");
    CHECK(fw.files.size() == 1);
    CHECK(contains(fw.summary, "no systemd: until reboot"));
    policy.fail2ban = true;
    std::string message;
    CHECK(test::exit_code_of([&] { plan_host(policy, facts); }, &message) == 6);
    CHECK(contains(message, "hardening.fail2ban: false"));
}

TEST_CASE("the host probe's output is parsed, and a cut one is refused", "[harden][host]") {
    const auto f = parse_host_facts("systemd=1\ncommand=nft\ndocker=1\npackage=nftables\n"
                                    "file=/etc/labctl/firewall.nft abc\nfirewall_live=def\n"
                                    "firewall_applied=def\nfail2ban_active=1\nsshd_jail=1\n"
                                    "auditd_active=1\naudit_rules=11\n"
                                    "sysctl.kernel.kptr_restrict=2\nclient_address=10.0.2.2\n"
                                    "listen_port=22\nend=1\n");
    CHECK(f.systemd);
    CHECK(f.docker);
    CHECK(f.commands.count("nft") == 1);
    CHECK(f.packages.count("nftables") == 1);
    CHECK(f.file_sha256.at("/etc/labctl/firewall.nft") == "abc");
    CHECK(f.firewall_live);
    CHECK(f.firewall_applied_sha256 == "def");
    CHECK(f.audit_rules == 11);
    CHECK(f.sysctl.at("kernel.kptr_restrict") == "2");
    CHECK(f.client_address == "10.0.2.2");
    CHECK(f.listen_port == 22);
    CHECK(test::exit_code_of([] { parse_host_facts("systemd=1\n"); }) == 6);
    // The script is POSIX sh and reads only.
    const auto script = host_facts_script();
    CHECK(contains(script, "nft list table inet labctl"));
    CHECK_FALSE(contains(script, "nft -f"));
    CHECK_FALSE(contains(script, "rm "));
}
