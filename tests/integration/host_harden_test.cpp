// The host firewall part applied for real (harden::apply_host over SSH) to a "target" that is a
// network namespace this test creates: a real sshd runs in it (root, its own mount namespace with
// tmpfs over /etc/labctl and /var/lib/labctl, so the machine's own files are never written), a
// listener stands in for the stack's published port, and this process reaches both over a veth
// pair (IPv4 and IPv6). Nothing outside the namespace is filtered. Shown:
// - kept when its check, a fresh SSH login and the judge pass: SSH and the opened port answer,
//   another port is dropped, over IPv4 and IPv6;
// - a policy that leaves the stack's port out fails the judge: reverted to the previous ruleset,
//   exit 6 naming the failed check;
// - a policy that moves SSH elsewhere fails the fresh login: reverted, exit 6, and the first
//   session (kept by the established rule) did the revert;
// - labctl lost right after applying: the revert armed on the target restores the old ruleset
//   by itself within revert_after;
// - `labctl harden --dry-run` changes nothing and prints a ruleset that `nft -c -f` accepts;
// - with a Docker engine of the test's own in the namespace, a published container port answers
//   through the firewall (Docker's DNAT and forward rules, untouched), an unpublished one does
//   not, and Docker still publishes new ports afterwards;
// - `labctl harden --host` applies the firewall after sshd, `labctl verify --only host.hardened`
//   passes, a second harden finds it up to date, and with the table deleted verify fails (exit
//   8) saying the firewall is not live.

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
#include <labctl/core/scope_guard.hpp>
#include <labctl/harden/host_apply.hpp>
#include <labctl/remote/session.hpp>

#include "background.hpp"
#include "skip.hpp"
#include "sshd.hpp"
#include "support.hpp"
#include "test_user.hpp"

using namespace labctl;
using namespace std::chrono_literals;
using labctl::test::contains;

namespace {

constexpr int k_stack_port = 8080;
constexpr int k_other_port = 5555;

void require_root_tools() {
    if (::geteuid() != 0)
        test::skip("network namespaces and nft need root");
    for (const char* p : {"nft", "unshare", "ip", "python3"})
        test::require_program(p);
}

/// A namespace of this test with a veth pair to this one (10.199.78.<4k+1> and
/// fd42:199:78:<k>::1 there, .<4k+2> and ::2 here; each test case its own k, as ctest runs them
/// side by side); removed with what runs in it.
class TargetNamespace {
public:
    explicit TargetNamespace(int k)
        : name(fmt::format("labctl-hh{}-{}", k, ::getpid())),
          link(fmt::format("lhh{}-{}", k, ::getpid() % 100000)),
          target(fmt::format("10.199.78.{}", 4 * k + 1)),
          target6(fmt::format("fd42:199:78:{}::1", k)), m_k(k) {
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
                 {"ip", "addr", "add", fmt::format("10.199.78.{}/30", 4 * m_k + 2), "dev", link},
                 {"ip", "-6", "addr", "add", fmt::format("fd42:199:78:{}::2/64", m_k), "dev", link,
                  "nodad"},
                 {"ip", "link", "set", link, "up"},
                 {"ip", "-n", name, "addr", "add", target + "/30", "dev", "eth0"},
                 {"ip", "-n", name, "-6", "addr", "add", target6 + "/64", "dev", "eth0", "nodad"},
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
    /// True when this process opens a TCP connection to the target's port within 2 s (over
    /// IPv6 with `v6`).
    bool reaches(int port, bool v6 = false) const {
        return run_process({"python3", "-c",
                            fmt::format("import socket; socket.create_connection(('{}', {}), "
                                        "timeout=2).close()",
                                        v6 ? target6 : target, port)},
                           {.timeout = 20s})
            .ok();
    }
    /// This side's address, as the target sees labctl.
    std::string client() const { return fmt::format("10.199.78.{}", 4 * m_k + 2); }

    const std::string name, link, target, target6;

private:
    void remove() const {
        run_process({"ip", "netns", "del", name}, {.timeout = 10s});
        run_process({"ip", "link", "del", link}, {.timeout = 10s});
    }
    int m_k;
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
    TargetNamespace ns(0);
    test::SshServer sshd{{.listen_address = ns.target, .command_prefix = ns.prefix()}};
    auto listen = [&](int port) {
        auto argv = ns.prefix();
        // "::": IPv4 and IPv6 (Python's dual-stack server).
        for (const std::string a : {"python3", "-m", "http.server", "--bind", "::"})
            argv.push_back(a);
        argv.push_back(std::to_string(port));
        return std::make_unique<test::BackgroundProcess>(
            argv, sshd.dir() / fmt::format("http-{}.log", port));
    };
    const auto stack = listen(k_stack_port);
    const auto other = listen(k_other_port);
    REQUIRE(test::wait_for_port(k_stack_port, 10s, ns.target));
    REQUIRE(test::wait_for_port(k_other_port, 10s, ns.target));

    auto session = remote::Session::connect(sshd.login());
    const auto facts = harden::probe_host_facts(session);
    CHECK(facts.client_address == ns.client());
    CHECK(facts.listen_port == sshd.port());
    CHECK_FALSE(facts.firewall_live);

    std::string judged;
    harden::HostApplyOptions options;
    options.revert_after = 30s;
    options.judge = [&](const std::string& part) {
        judged += part + " ";
        return ns.reaches(k_stack_port)
                   ? std::string()
                   : fmt::format("stack.health: nothing answers on {}:{}", ns.target, k_stack_port);
    };
    const harden::FirewallPort stack_port{"tcp", k_stack_port, 0, "compose: frontend"};

    // Applied and kept.
    const auto kept = harden::apply_host(firewall_plan(session, sshd.port(), {stack_port}), session,
                                         sshd.login(), false, options);
    CHECK(kept.changed);
    CHECK(judged == "firewall ");
    CHECK(ns.nft({"list", "chain", "inet", "labctl", "input"}).out.find("policy drop") !=
          std::string::npos);
    CHECK(ns.reaches(sshd.port()));
    CHECK(ns.reaches(k_stack_port));
    CHECK_FALSE(ns.reaches(k_other_port));
    // The same over IPv6 (neighbour discovery passes: ICMPv6 essentials).
    CHECK(ns.reaches(k_stack_port, true));
    CHECK_FALSE(ns.reaches(k_other_port, true));
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
        CHECK(contains(message, fmt::format("firewall: the lab's checks failed with it live: "
                                            "stack.health: nothing answers on {}:8080",
                                            ns.target)));
        CHECK(contains(message, "(the previous state was restored)"));
        CHECK(ns.nft({"list", "table", "inet", "labctl"}).out == kept_rules);
        CHECK(ns.reaches(k_stack_port));
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
        CHECK(ns.reaches(sshd.port()));
    }
    SECTION("labctl lost right after applying: the target's armed revert restores the old rules") {
        options.revert_after = 3s;
        options.fault = "abandon:firewall";
        CHECK(test::exit_code_of([&] {
                  harden::apply_host(firewall_plan(session, sshd.port(), {}), session, sshd.login(),
                                     false, options);
              }) == 6);
        CHECK_FALSE(ns.reaches(k_stack_port)); // the blocking rules are live
        CHECK(eventually([&] { return ns.reaches(k_stack_port); }, 20s));
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
    TargetNamespace ns(1);
    test::SshServer sshd{
        {.include_dropins = true, .listen_address = ns.target, .command_prefix = ns.prefix()}};
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
                                     "--host", fmt::format("root@{}:{}", ns.target, sshd.port())},
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
    CHECK(contains(ruleset, fmt::format("ip saddr {{ 192.0.2.0/24, {} }} tcp dport", ns.client())));
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
                                        fmt::format("root@{}:{}", ns.target, sshd.port())},
                                       {.timeout = 60s});
    CHECK(text.exit_code == 0);
    CHECK(contains(text.out, "### /etc/labctl/firewall.nft (mode 600)\n"));
    CHECK(contains(text.out, "## sshd: "));
}

TEST_CASE("with the firewall on, Docker's published port answers and an unpublished one does not",
          "[harden][host][docker]") {
    require_root_tools();
    test::require_program("dockerd");
    test::require_program("nsenter");
    test::require_program("docker");
    TargetNamespace ns(2);
    test::TempDir dir;
    // A Docker engine of this test inside the namespace: its own data, state and socket (and
    // containerd, which dockerd starts under its exec-root), its iptables rules in the namespace.
    const auto d = dir.path();
    const std::string sock = "unix://" + (d / "docker.sock").string();
    // nsenter, not `ip netns exec`: that one remounts /sys, and dockerd needs the cgroup mounts.
    auto dockerd_argv = std::vector<std::string>{"nsenter", "--net=/run/netns/" + ns.name};
    for (const std::string& a : std::vector<std::string>{
             "dockerd", "--data-root", (d / "data").string(), "--exec-root", (d / "exec").string(),
             "--pidfile", (d / "dockerd.pid").string(), "--host", sock, "--storage-driver", "vfs"})
        dockerd_argv.push_back(a);
    test::BackgroundProcess dockerd(dockerd_argv, d / "dockerd.log");
    const auto docker = [&](std::vector<std::string> args, std::chrono::seconds timeout = 60s) {
        args.insert(args.begin(), {"docker", "-H", sock});
        return run_process(args, {.timeout = timeout});
    };
    // Containers first, before dockerd stops (their shims would outlive it), whatever fails.
    const ScopeGuard remove_containers([&] {
        docker({"rm", "-f", "published", "unpublished", "after"});
    });
    const auto up = [&] {
        return docker({"info"}, 10s).ok();
    };
    REQUIRE(eventually(up, 40s));
    // The image: an empty root whose /usr is the host's (bind-mounted read-only), so python3
    // serves without a registry or a base image.
    const auto rootfs = d / "rootfs.tar";
    REQUIRE(run_process({"python3", "-c",
                         fmt::format("import tarfile\n"
                                     "t = tarfile.open('{}', 'w')\n"
                                     "for n in ['usr', 'tmp', 'etc', 'proc', 'sys', 'dev']:\n"
                                     "    i = tarfile.TarInfo(n); i.type = tarfile.DIRTYPE; "
                                     "i.mode = 0o755; t.addfile(i)\n"
                                     "for n in ['bin', 'lib', 'lib64', 'sbin']:\n"
                                     "    i = tarfile.TarInfo(n); i.type = tarfile.SYMTYPE; "
                                     "i.linkname = 'usr/' + n; t.addfile(i)\n"
                                     "t.close()\n",
                                     rootfs.string())},
                        {.timeout = 20s})
                .ok());
    REQUIRE(docker({"import", rootfs.string(), "labctl-test/usr-bind:1"}).ok());
    const auto serve = [&](const std::string& name, std::vector<std::string> publish) {
        std::vector<std::string> args{"run", "-d", "--name", name};
        args.insert(args.end(), publish.begin(), publish.end());
        for (const std::string a : {"-v", "/usr:/usr:ro", "labctl-test/usr-bind:1", "python3", "-m",
                                    "http.server", "8000"})
            args.push_back(a);
        const auto r = docker(args);
        INFO(r.err);
        REQUIRE(r.ok());
    };
    constexpr int k_published = 8081;
    serve("published", {"-p", fmt::format("{}:{}:8000", ns.target, k_published)});
    serve("unpublished", {});
    REQUIRE(eventually([&] { return ns.reaches(k_published); }, 20s));

    test::SshServer sshd{{.listen_address = ns.target, .command_prefix = ns.prefix()}};
    auto session = remote::Session::connect(sshd.login());
    harden::HostApplyOptions options;
    options.revert_after = 30s;
    options.judge = [&](const std::string&) {
        return ns.reaches(k_published) ? std::string() : std::string("published port dropped");
    };
    // The firewall opens no stack port: Docker's DNAT hands the published one to the forward
    // hook, which labctl's input chain does not filter.
    const auto report = harden::apply_host(firewall_plan(session, sshd.port(), {}), session,
                                           sshd.login(), false, options);
    CHECK(report.changed);
    CHECK(ns.reaches(k_published));
    CHECK_FALSE(ns.reaches(8000)); // the unpublished container port is not on the host
    // Docker's own tables are still there beside labctl's, and Docker still starts containers.
    const auto tables = ns.nft({"list", "tables"}).out;
    CHECK(contains(tables, "table inet labctl"));
    CHECK(contains(tables, "table ip nat"));
    serve("after", {"-p", fmt::format("{}:{}:8000", ns.target, k_published + 1)});
    CHECK(eventually([&] { return ns.reaches(k_published + 1); }, 20s));
}

TEST_CASE("labctl harden applies the firewall after sshd, verify's host.hardened passes, and fails "
          "once the rules are gone",
          "[harden][host][cli]") {
    require_root_tools();
    TargetNamespace ns(3);
    test::TestUser user;
    test::SshServer sshd{
        {.include_dropins = true, .listen_address = ns.target, .command_prefix = ns.prefix()}};
    test::TempDir dir;
    const auto lab = dir.write("lab.yaml", fmt::format(R"(version: 1
project: hh
ssh:
  user: {}
  private_key: {}
  known_hosts: {}
vms:
  - name: box
hardening:
  revert_seconds: 60
  fail2ban: false
  auditd: false
  sysctl: false
)",
                                                       user.name(), sshd.client_key().string(),
                                                       sshd.known_hosts().string()))
                         .string();
    const std::string host = fmt::format("{}@{}:{}", user.name(), ns.target, sshd.port());
    const auto harden = test::run_labctl({"--output", "json", "harden", "-f", lab, "--host", host},
                                         {.timeout = 120s});
    INFO(harden.out << harden.err);
    REQUIRE(harden.exit_code == 0);
    const auto doc = nlohmann::json::parse(harden.out);
    const auto& parts = doc.at("hosts").at(0).at("host_parts");
    CHECK(parts.at("changed") == true);
    CHECK(contains(harden.err, "firewall: kept"));
    // The stack's service ports are open (the stack is not running there yet), others dropped.
    CHECK(contains(ns.nft({"list", "table", "inet", "labctl"}).out, "tcp dport 8080 accept"));

    const auto verify = [&] {
        return test::run_labctl(
            {"verify", "-f", lab, "--host", host, "--only", "host.hardened", "--deadline", "60s"},
            {.timeout = 120s});
    };
    const auto pass = verify();
    INFO(pass.out << pass.err);
    CHECK(pass.exit_code == 0);
    CHECK(contains(pass.out, "firewall as lab.yaml wants them and live"));
    // A second harden finds the part up to date.
    const auto again = test::run_labctl({"harden", "-f", lab, "--host", host}, {.timeout = 120s});
    CHECK(again.exit_code == 0);
    CHECK(contains(again.err, "firewall: up to date"));

    REQUIRE(ns.nft({"delete", "table", "inet", "labctl"}).ok());
    const auto fail = verify();
    INFO(fail.out << fail.err);
    CHECK(fail.exit_code == 8);
    CHECK(contains(fail.out, "firewall: not live (its check exits 1)"));
}
