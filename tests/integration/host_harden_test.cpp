// The host firewall part applied for real (harden::apply_host over SSH) to a "target" that is a
// network namespace this test creates: a real sshd runs in it (root, its own mount namespace with
// tmpfs over /etc/labctl and /var/lib/labctl, so the machine's own files are never written), a
// listener stands in for the stack's published port, and this process reaches both over a veth
// pair (10.199.78.1 in the namespace, 10.199.78.2 here). Nothing outside the namespace is
// filtered. Shown:
// - kept when its check, a fresh SSH login and the judge pass: SSH and the opened port answer,
//   another port is dropped;
// - a policy that leaves the stack's port out fails the judge: reverted to the previous ruleset,
//   exit 6 naming the failed check;
// - a policy that moves SSH elsewhere fails the fresh login: reverted, exit 6, and the first
//   session (kept by the established rule) did the revert;
// - labctl lost right after applying: the revert armed on the target restores the old ruleset
//   by itself within revert_after;
// - `labctl harden --dry-run` changes nothing and prints a ruleset that `nft -c -f` accepts.

#include <fmt/format.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include <labctl/core/error.hpp>
#include <labctl/core/process.hpp>
#include <labctl/harden/host_apply.hpp>
#include <labctl/remote/session.hpp>

#include "background.hpp"
#include "skip.hpp"
#include "sshd.hpp"
#include "support.hpp"

using namespace labctl;
using namespace std::chrono_literals;
using labctl::test::contains;

namespace {

constexpr const char* k_target = "10.199.78.1";
constexpr int k_stack_port = 8080;
constexpr int k_other_port = 5555;

void require_root_tools() {
    if (::geteuid() != 0)
        test::skip("network namespaces and nft need root");
    for (const char* p : {"nft", "unshare", "ip", "python3"})
        test::require_program(p);
}

/// A namespace of this test with a veth pair to this one; removed with what runs in it.
class TargetNamespace {
public:
    TargetNamespace()
        : name(fmt::format("labctl-hh-{}", ::getpid())),
          link(fmt::format("lhh{}", ::getpid() % 100000)) {
        remove();
        // Mount points for the tmpfs the target's mount namespace puts over them.
        for (const char* d : {"/etc/labctl", "/var/lib/labctl"})
            if (!std::filesystem::exists(d)) {
                std::filesystem::create_directories(d);
                m_created.push_back(d);
            }
        for (const auto& cmd : std::vector<std::vector<std::string>>{
                 {"ip", "netns", "add", name},
                 {"ip", "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", name},
                 {"ip", "addr", "add", "10.199.78.2/30", "dev", link},
                 {"ip", "link", "set", link, "up"},
                 {"ip", "-n", name, "addr", "add", "10.199.78.1/30", "dev", "eth0"},
                 {"ip", "-n", name, "link", "set", "eth0", "up"},
                 {"ip", "-n", name, "link", "set", "lo", "up"}}) {
            const auto r = run_process(cmd, {.timeout = 10s});
            INFO(fmt::format("{}: {}", fmt::join(cmd, " "), r.err));
            REQUIRE(r.ok());
        }
    }
    ~TargetNamespace() {
        remove();
        for (const auto& d : m_created) {
            std::error_code ec;
            std::filesystem::remove(d, ec); // only if still empty
        }
    }
    TargetNamespace(const TargetNamespace&) = delete;
    TargetNamespace& operator=(const TargetNamespace&) = delete;

    /// Runs a command inside the namespace with its own mount namespace and labctl's directories
    /// on tmpfs (what sshd and everything it starts sees).
    std::vector<std::string> prefix() const {
        return {"ip",
                "netns",
                "exec",
                name,
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                "mount -t tmpfs labctl-test /etc/labctl && mount -t tmpfs labctl-test "
                "/var/lib/labctl && exec \"$0\" \"$@\""};
    }
    ProcessResult nft(const std::vector<std::string>& args) const {
        std::vector<std::string> argv{"ip", "netns", "exec", name, "nft"};
        argv.insert(argv.end(), args.begin(), args.end());
        return run_process(argv, {.timeout = 10s});
    }
    /// True when this process opens a TCP connection to the target's port within 2 s.
    static bool reaches(int port) {
        return run_process({"python3", "-c",
                            fmt::format("import socket; socket.create_connection(('{}', {}), "
                                        "timeout=2).close()",
                                        k_target, port)},
                           {.timeout = 20s})
            .ok();
    }

    const std::string name, link;

private:
    void remove() const {
        run_process({"ip", "netns", "del", name}, {.timeout = 10s});
        run_process({"ip", "link", "del", link}, {.timeout = 10s});
    }
    std::vector<std::string> m_created;
};

harden::HostPlan firewall_plan(remote::Session& session, int ssh_port,
                               std::vector<harden::FirewallPort> ports) {
    harden::HostPolicy policy;
    policy.fail2ban = policy.auditd = policy.sysctl = false;
    policy.ssh_port = ssh_port;
    policy.open_ports = std::move(ports);
    return harden::plan_host(policy, harden::probe_host_facts(session));
}

bool eventually(const std::function<bool()>& cond, std::chrono::seconds within) {
    const auto until = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < until) {
        if (cond())
            return true;
        std::this_thread::sleep_for(300ms);
    }
    return cond();
}

} // namespace

TEST_CASE("the firewall part is kept only when a new login and the lab's judge pass, and is "
          "reverted otherwise",
          "[harden][host]") {
    require_root_tools();
    TargetNamespace ns;
    test::SshServer sshd{{.listen_address = k_target, .command_prefix = ns.prefix()}};
    auto listen = [&](int port) {
        auto argv = ns.prefix();
        for (const std::string a : {"python3", "-m", "http.server", "--bind", k_target})
            argv.push_back(a);
        argv.push_back(std::to_string(port));
        return std::make_unique<test::BackgroundProcess>(
            argv, sshd.dir() / fmt::format("http-{}.log", port));
    };
    const auto stack = listen(k_stack_port);
    const auto other = listen(k_other_port);
    REQUIRE(test::wait_for_port(k_stack_port, 10s, k_target));
    REQUIRE(test::wait_for_port(k_other_port, 10s, k_target));

    auto session = remote::Session::connect(sshd.login());
    const auto facts = harden::probe_host_facts(session);
    CHECK(facts.client_address == "10.199.78.2");
    CHECK(facts.listen_port == sshd.port());
    CHECK_FALSE(facts.firewall_live);

    std::string judged;
    harden::HostApplyOptions options;
    options.revert_after = 30s;
    options.judge = [&](const std::string& part) {
        judged += part + " ";
        return TargetNamespace::reaches(k_stack_port)
                   ? std::string()
                   : fmt::format("stack.health: nothing answers on {}:{}", k_target, k_stack_port);
    };
    const harden::FirewallPort stack_port{"tcp", k_stack_port, 0, "compose: frontend"};

    // Applied and kept.
    const auto kept = harden::apply_host(firewall_plan(session, sshd.port(), {stack_port}), session,
                                         sshd.login(), false, options);
    CHECK(kept.changed);
    CHECK(judged == "firewall ");
    CHECK(ns.nft({"list", "chain", "inet", "labctl", "input"}).out.find("policy drop") !=
          std::string::npos);
    CHECK(TargetNamespace::reaches(sshd.port()));
    CHECK(TargetNamespace::reaches(k_stack_port));
    CHECK_FALSE(TargetNamespace::reaches(k_other_port));
    const auto state =
        session.exec("ls -A /var/lib/labctl/harden/host; cat /etc/labctl/firewall.nft");
    CHECK_FALSE(contains(state.out, ".backup"));
    CHECK_FALSE(contains(state.out, "revert.sh"));
    CHECK(contains(state.out, "firewall.applied"));
    CHECK(contains(state.out, "tcp dport 8080 accept"));
    // A second run finds nothing to change.
    CHECK_FALSE(firewall_plan(session, sshd.port(), {stack_port}).changes());
    const auto kept_rules = ns.nft({"list", "table", "inet", "labctl"}).out;

    SECTION("a ruleset that blocks the stack's port fails the judge and is reverted") {
        std::string message;
        CHECK(test::exit_code_of(
                  [&] {
                      harden::apply_host(firewall_plan(session, sshd.port(), {}), session,
                                         sshd.login(), false, options);
                  },
                  &message) == 6);
        CHECK(contains(message, "firewall: the lab's checks failed with it live: stack.health: "
                                "nothing answers on 10.199.78.1:8080"));
        CHECK(contains(message, "(the previous state was restored)"));
        CHECK(ns.nft({"list", "table", "inet", "labctl"}).out == kept_rules);
        CHECK(TargetNamespace::reaches(k_stack_port));
        CHECK(contains(session.exec("cat /etc/labctl/firewall.nft").out, "tcp dport 8080"));
    }
    SECTION("a ruleset that drops labctl's next login is reverted over the first session") {
        std::string message;
        CHECK(test::exit_code_of(
                  [&] {
                      harden::apply_host(firewall_plan(session, sshd.port() + 1, {stack_port}),
                                         session, sshd.login(), false, options);
                  },
                  &message) == 6);
        CHECK(contains(message, "firewall: a new SSH login failed"));
        CHECK(ns.nft({"list", "table", "inet", "labctl"}).out == kept_rules);
        CHECK(TargetNamespace::reaches(sshd.port()));
    }
    SECTION("labctl lost right after applying: the target's armed revert restores the old rules") {
        options.revert_after = 3s;
        options.fault = "abandon:firewall";
        CHECK(test::exit_code_of([&] {
                  harden::apply_host(firewall_plan(session, sshd.port(), {}), session, sshd.login(),
                                     false, options);
              }) == 6);
        CHECK_FALSE(TargetNamespace::reaches(k_stack_port)); // the blocking rules are live
        CHECK(eventually([&] { return TargetNamespace::reaches(k_stack_port); }, 20s));
        CHECK(ns.nft({"list", "table", "inet", "labctl"}).out == kept_rules);
        CHECK(eventually(
            [&] {
                return !contains(session.exec("ls -A /var/lib/labctl/harden/host").out, "revert");
            },
            10s));
    }
}

TEST_CASE("labctl harden --dry-run changes nothing and prints a ruleset nft accepts",
          "[harden][host][cli]") {
    require_root_tools();
    TargetNamespace ns;
    test::SshServer sshd{
        {.include_dropins = true, .listen_address = k_target, .command_prefix = ns.prefix()}};
    test::TempDir dir;
    const auto lab =
        dir.write("lab.yaml", fmt::format(R"(version: 1
project: hh
ssh:
  private_key: {}
  known_hosts: {}
vms:
  - name: box
hardening:
  fail2ban: false
  auditd: false
  sysctl: false
  firewall:
    ssh_sources: [192.0.2.0/24]
    allow: [9100/tcp]
)",
                                          sshd.client_key().string(), sshd.known_hosts().string()));
    const auto r = test::run_labctl({"--output", "json", "harden", "--dry-run", "-f", lab.string(),
                                     "--host", fmt::format("root@{}:{}", k_target, sshd.port())},
                                    {.timeout = 60s});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    const auto doc = nlohmann::json::parse(r.out);
    const auto& host = doc.at("hosts").at(0);
    CHECK(host.at("dry_run") == true);
    const auto& parts = host.at("host_parts").at("parts");
    REQUIRE(parts.size() == 1);
    CHECK(parts[0].at("name") == "firewall");
    CHECK(parts[0].at("changes") == true);
    const std::string ruleset = parts[0].at("files").at(0).at("content");
    CHECK(contains(ruleset, "ip saddr { 192.0.2.0/24, 10.199.78.2 } tcp dport"));
    CHECK(contains(ruleset, "tcp dport 9100 accept"));
    ProcessOptions o;
    o.stdin_data = ruleset;
    o.timeout = 30s;
    const auto check = run_process({"unshare", "--net", "nft", "-c", "-f", "-"}, o);
    INFO(check.err);
    CHECK(check.exit_code == 0);
    // Nothing was applied: no table, no file, sshd's drop-in untouched.
    CHECK(ns.nft({"list", "tables"}).out.find("labctl") == std::string::npos);
    auto session = remote::Session::connect(sshd.login());
    CHECK(session.exec("test -e /etc/labctl/firewall.nft").exit_status != 0);
    CHECK_FALSE(std::filesystem::exists(sshd.dropin_dir() / "01-labctl.conf"));
    // The text form shows each file under its path.
    const auto text = test::run_labctl({"harden", "--dry-run", "-f", lab.string(), "--host",
                                        fmt::format("root@{}:{}", k_target, sshd.port())},
                                       {.timeout = 60s});
    CHECK(text.exit_code == 0);
    CHECK(contains(text.out, "### /etc/labctl/firewall.nft (mode 600)\n"));
    CHECK(contains(text.out, "## sshd: "));
}
