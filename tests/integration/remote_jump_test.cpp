// labctl's SSH sessions through a jump host (issue #15 §2), against real OpenSSH servers: the
// "guest" sshd is reachable only through the jump (tests/support/jump_lab.hpp: a network
// namespace of the test's own where a firewall rule lets only the jump's login user reach the
// guest's port). So a session that works proves the path went through the jump; the host's own
// network stack is never touched.

#include <fmt/format.h>
#include <sched.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include <labctl/core/process.hpp>
#include <labctl/remote/session.hpp>

#include "jump_lab.hpp"
#include "skip.hpp"
#include "sshd.hpp"
#include "support.hpp"
#include "test_user.hpp"

using namespace labctl;
using namespace std::chrono_literals;
using labctl::test::enter_private_netns;
using labctl::test::JumpLab;
using labctl::test::read_file;
using labctl::test::SshServer;
using labctl::test::TempDir;
namespace fs = std::filesystem;

namespace {

using labctl::test::contains;

} // namespace

TEST_CASE("a guest reachable only through the jump host: exec, stdin and SFTP work through it",
          "[remote][jump]") {
    enter_private_netns();
    JumpLab lab;
    // The rule holds: labctl's own connection to the guest is refused.
    CHECK_THROWS_AS(remote::Session::connect(lab.direct()), remote::ConnectError);

    auto session = remote::Session::connect(lab.through_jump());
    CHECK(session.facts().host_key_fingerprint.rfind("SHA256:", 0) == 0);
    const auto who = session.exec("id -un");
    CHECK(who.ok());
    CHECK(who.out == lab.guest.user() + "\n");

    // 4 MiB each way: the pump's back-pressure and both directions under load.
    remote::ExecOptions eo;
    eo.stdin_data = std::string(4 * 1024 * 1024, 'x');
    const auto counted = session.exec("wc -c", eo);
    CHECK(counted.ok());
    CHECK(counted.out == "4194304\n");
    const auto big = session.exec("head -c 4194304 /dev/zero | tr '\\0' y");
    CHECK(big.ok());
    CHECK(big.out.size() == 4194304);

    const auto remote_file = (lab.dir.path() / "uploaded.txt").string();
    session.upload(remote_file, "through the jump\n", 0600);
    CHECK(read_file(remote_file) == "through the jump\n");
    CHECK(lab.only_listeners_left());
}

TEST_CASE("the jump host's key is pinned like a guest's: a mismatch names both fingerprints and "
          "an unpinned jump is refused",
          "[remote][jump]") {
    enter_private_netns();
    JumpLab lab;
    SshServer impostor; // another host key: what a man in the middle would present
    auto o = lab.through_jump();
    const std::string guest_line = read_file(lab.guest.known_hosts());
    const std::string impostor_line = read_file(impostor.known_hosts());
    const std::string jump_pattern = fmt::format("[{}]:{}", lab.jump.host(), lab.jump.port());
    std::string wrong = impostor_line;
    wrong.replace(0, wrong.find(' '), jump_pattern);
    lab.dir.write("mismatch", guest_line + wrong);
    o.known_hosts = (lab.dir.path() / "mismatch").string();
    try {
        remote::Session::connect(o);
        FAIL("connected through a jump host whose key does not match");
    } catch (const remote::ConnectError& e) {
        FAIL("a mismatch must be final, not retried: " << e.what());
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::ssh);
        CHECK(contains(e.what(), "jump host: host key mismatch for " + jump_pattern));
        CHECK(contains(e.what(), "SHA256:"));
    }

    lab.dir.write("guest-only", guest_line);
    o.known_hosts = (lab.dir.path() / "guest-only").string();
    try {
        remote::Session::connect(o);
        FAIL("connected through an unpinned jump host");
    } catch (const remote::ConnectError& e) {
        FAIL("an unpinned key must be final, not retried: " << e.what());
    } catch (const Error& e) {
        CHECK(contains(e.what(), "jump host: host key of " + jump_pattern));
        CHECK(contains(e.what(), "is not pinned"));
    }
}

TEST_CASE("a jump host that forbids forwarding: connecting is retried, then fails naming the jump, "
          "the target and AllowTcpForwarding",
          "[remote][jump]") {
    enter_private_netns();
    JumpLab lab("AllowTcpForwarding no");
    const auto started = std::chrono::steady_clock::now();
    try {
        remote::wait_for_session(lab.through_jump(), 3s);
        FAIL("connected through a jump host that forbids forwarding");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::timeout);
        CHECK(contains(e.what(), fmt::format("the jump host {}@{}:{} could not connect to {}:{}",
                                             lab.jump_user.name(), lab.jump.host(), lab.jump.port(),
                                             lab.guest.host(), lab.guest.port())));
    }
    const auto took = std::chrono::steady_clock::now() - started;
    CHECK(took < 15s);
    try {
        remote::Session::connect(lab.through_jump());
        FAIL("connected through a jump host that forbids forwarding");
    } catch (const remote::ConnectError& e) {
        CHECK(contains(e.hint(), "AllowTcpForwarding"));
    }
}

TEST_CASE("the jump host's session killed mid-exec: exec fails within seconds naming the jump "
          "host, and nothing is left running here",
          "[remote][jump][fault]") {
    enter_private_netns();
    JumpLab lab;
    auto session = remote::Session::connect(lab.through_jump());
    std::thread killer([&] {
        std::this_thread::sleep_for(1s);
        // The jump's post-authentication process runs as its login user.
        run_process({"pkill", "-KILL", "-u", lab.jump_user.name()});
    });
    const auto started = std::chrono::steady_clock::now();
    try {
        remote::ExecOptions eo;
        eo.timeout = 60s;
        session.exec("sleep 30", eo);
        killer.join();
        FAIL("exec survived the loss of its jump host");
    } catch (const Error& e) {
        killer.join();
        CHECK(e.code() == ExitCode::ssh);
        INFO(e.what());
        CHECK(contains(e.what(), "jump host"));
    }
    const auto took = std::chrono::steady_clock::now() - started;
    CHECK(took < 10s);
    CHECK(lab.only_listeners_left());
}

TEST_CASE("labctl harden, ssh, deploy --dry-run and doctor reach a lab VM only through the jump "
          "host named in ssh.jump (libssh2 through its tunnel, the system ssh and rsync through "
          "ProxyJump)",
          "[remote][jump][cli]") {
    enter_private_netns();
    test::TestUser guest_user;
    // The guest as harden finds a Debian sshd: drop-ins included, passwords still allowed.
    JumpLab lab("AllowTcpForwarding yes",
                {.include_dropins = true, .password_auth = true, .listen_address = "127.0.0.2"});
    const auto stack = lab.dir.path() / "stack";
    fs::create_directories(stack / "www");
    lab.dir.write("stack/www/index.html", "through the jump\n");
    const auto remote_dir = lab.dir.path() / "remote";
    const auto yaml = lab.dir.write(
        "lab.yaml",
        fmt::format(R"(version: 1
project: jumpcli
network:
  cidr: 127.0.0.0/24
ssh:
  user: {}
  port: {}
  private_key: {}
  known_hosts: {}
  jump: {}@{}:{}
  jump_key: {}
vms:
  - name: box
    ip: {}
hardening:
  revert_seconds: 60
  # the host parts would change this machine: a VM gets them (e2e)
  firewall: false
  fail2ban: false
  auditd: false
  sysctl: false
deploy:
  stack_dir: {}
  remote_dir: {}
)",
                    guest_user.name(), lab.guest.port(), lab.guest.client_key().string(),
                    lab.known_hosts.string(), lab.jump_user.name(), lab.jump.host(),
                    lab.jump.port(), lab.jump.client_key().string(), lab.guest.host(),
                    stack.string(), remote_dir.string()));
    const std::string f = yaml.string();

    const auto harden = test::run_labctl({"harden", "-f", f}, {.timeout = 120s});
    INFO("harden: " << harden.err);
    REQUIRE(harden.exit_code == 0);
    CHECK(guest_user.password_state() == "L");
    CHECK(contains(test::read_file(lab.guest.dropin_dir() / "01-labctl.conf"),
                   "PasswordAuthentication no"));

    // The system ssh: ProxyJump to the jump host, whose key the same known_hosts pins.
    const auto ssh = test::run_labctl({"ssh", "-f", f, "box", "--", "echo", "hello-via-jump"});
    INFO("ssh: " << ssh.err);
    CHECK(ssh.exit_code == 0);
    CHECK(ssh.out == "hello-via-jump\n");
    const auto config = test::read_file(lab.dir.path() / ".labctl" / "ssh_config");
    CHECK(contains(config, "ProxyJump labctl-jump"));
    CHECK(
        contains(config, fmt::format("Host labctl-jump\n    HostName {}\n    Port {}\n    User {}",
                                     lab.jump.host(), lab.jump.port(), lab.jump_user.name())));
    CHECK(contains(config, "UserKnownHostsFile " + lab.known_hosts.string()));

    // rsync: the same ssh_config, so the same jump.
    const auto dry = test::run_labctl({"deploy", "--dry-run", "-f", f}, {.timeout = 120s});
    INFO("deploy --dry-run: " << dry.err);
    CHECK(dry.exit_code == 0);
    CHECK(contains(dry.out, "www/index.html"));

    const auto doctor = test::run_labctl({"doctor", "-f", f, "--output", "json"});
    INFO("doctor: " << doctor.out << doctor.err);
    const auto j = nlohmann::json::parse(doctor.out);
    bool jump_ok = false;
    for (const auto& c : j["checks"])
        if (c["name"] == "ssh.jump")
            jump_ok = c["status"] == "ok" &&
                      contains(c["detail"].get<std::string>(), lab.jump_user.name() + "@");
    CHECK(jump_ok);
    CHECK(lab.only_listeners_left());
}

TEST_CASE("labctl through a jump host whose key is not pinned refuses with exit 5, names the jump "
          "and says how to pin it",
          "[remote][jump][cli]") {
    enter_private_netns();
    JumpLab lab;
    const auto guest_only = lab.dir.write("guest_only", test::read_file(lab.guest.known_hosts()));
    const auto yaml = lab.dir.write(
        "lab.yaml", fmt::format(R"(version: 1
project: jumpcli
network:
  cidr: 127.0.0.0/24
ssh:
  user: {}
  port: {}
  private_key: {}
  known_hosts: {}
  jump: {}@{}:{}
  jump_key: {}
vms:
  - name: box
    ip: 127.0.0.2
)",
                                // Never reached: the jump host's key is checked first.
                                "labctl", lab.guest.port(), lab.guest.client_key().string(),
                                guest_only.string(), lab.jump_user.name(), lab.jump.host(),
                                lab.jump.port(), lab.jump.client_key().string()));
    const std::string pattern = fmt::format("[{}]:{}", lab.jump.host(), lab.jump.port());
    const auto r = test::run_labctl({"harden", "-f", yaml.string(), "--wait", "5s"});
    INFO(r.err);
    CHECK(r.exit_code == 5);
    CHECK(contains(r.err, "jump host: host key of " + pattern));
    CHECK(contains(r.err, "is not pinned"));
    CHECK(contains(r.err, fmt::format("hint: the VMs are reached through this host: check its "
                                      "fingerprint out of band, then pin it, e.g. from your own "
                                      "known_hosts: ssh-keygen -F '{}'",
                                      pattern)));
    const auto doctor = test::run_labctl({"doctor", "-f", yaml.string(), "--output", "json"});
    const auto j = nlohmann::json::parse(doctor.out);
    bool named = false;
    for (const auto& c : j["checks"])
        if (c["name"] == "ssh.jump")
            named = c["status"] == "fail" && contains(c["hint"].get<std::string>(),
                                                      fmt::format("ssh-keygen -F '{}'", pattern));
    CHECK(named);
    // labctl init on that lab file says the same: which jump is not pinned, and how.
    const auto init = test::run_labctl({"init", "-f", yaml.string()});
    INFO("init: " << init.out << init.err);
    CHECK(init.exit_code == 0);
    CHECK(contains(init.out, fmt::format("jump:     the VMs of host 'default' are reached through "
                                         "{}@{}:{}, whose key is not pinned in ",
                                         lab.jump_user.name(), lab.jump.host(), lab.jump.port())));
    CHECK(contains(init.out, fmt::format("ssh-keygen -F '{}'", pattern)));
    const auto init_json = test::run_labctl({"init", "-f", yaml.string(), "--output", "json"});
    const auto ij = nlohmann::json::parse(init_json.out);
    REQUIRE(ij["jumps"].size() == 1);
    CHECK(ij["jumps"][0]["pinned"] == false);
    CHECK(lab.only_listeners_left());
}
