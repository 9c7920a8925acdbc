// The real probe script (harden::facts_script) run by /bin/sh here, with `ss`, `sshd` and
// `passwd` replaced by stubs that print what the cloud images' own print:
// - Ubuntu 24.04 socket-activates sshd (ssh.socket, Accept=no): systemd passes the listening
//   socket to sshd and keeps it open too, so `ss -tlnp` names both holders of the socket, the
//   sshd and systemd as pid 1
//   (cpsource/openssh-9.6p1-code-reviewed@0072b99:debian/patches/systemd-socket-activation.patch:
//   the passed fds are marked no-close and survive sshd's SIGHUP re-exec).
// - Debian 12/13 run sshd as ssh.service; on Debian 13 (OpenSSH 10.0) the per-connection
//   processes are sshd-session and only the listener, still named sshd, holds the socket
//   (openssh/openssh-portable@V_10_0_P1:sshd.c, rexec_argv[0] = options.sshd_session_path).
// And the digest of `sshd -T` that the probe computes must be the one labctl records after
// applying, for the same connection (harden_record_test.cpp covers the record itself).

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <labctl/core/process.hpp>
#include <labctl/harden/facts.hpp>
#include <labctl/harden/record.hpp>

#include "support.hpp"

using namespace labctl;

namespace {

// client 10.0.2.2 port 40000 -> server 10.0.2.15 port 22, as under QEMU's user networking.
constexpr const char* k_connection = "10.0.2.2 40000 10.0.2.15 22";

struct Stubs {
    test::TempDir dir;
    Stubs() {
        // ss prints the listening socket line the test gives it, whatever the filter.
        stub("ss", "printf '%s\\n' \"$LABCTL_TEST_SS\"");
        // sshd -T prints its own arguments: the digest then tells which spec it was given.
        stub("sshd", "printf '%s\\n' \"$@\"");
        stub("passwd", "echo \"$2 L 2026-01-01 0 99999 7 -1\"");
        stub("mkdir", "exit 0"); // the probe's mkdir -p /run/sshd stays off this machine
    }
    void stub(const std::string& name, const std::string& body) {
        const auto p = dir.write(name, "#!/bin/sh\n" + body + "\n");
        std::filesystem::permissions(p, std::filesystem::perms::owner_all);
    }
    ProcessResult sh(const std::string& script, const std::string& ss_line) const {
        ProcessOptions o;
        const char* path = std::getenv("PATH");
        o.env["PATH"] = dir.path().string() + ":" + (path ? path : "/usr/bin:/bin");
        o.env["LABCTL_SSH_CONNECTION"] = k_connection;
        o.env["LABCTL_TEST_SS"] = ss_line;
        o.timeout = std::chrono::seconds(60);
        return run_process({"/bin/sh", "-c", script}, o);
    }
    harden::TargetFacts probe(const std::string& ss_line) const {
        const auto r = sh(harden::facts_script({"labctl"}), ss_line);
        INFO(r.err);
        REQUIRE(r.ok());
        return harden::parse_facts(r.out);
    }
};

} // namespace

TEST_CASE("on Ubuntu's socket-activated ssh the probe takes the sshd that holds the socket, not "
          "systemd",
          "[harden][cloud-image][probe]") {
    const Stubs stubs;
    // ss lists a socket's holders in the order it found them; both orders occur.
    for (const char* users : {R"(users:(("sshd",pid=812,fd=3),("systemd",pid=1,fd=123)))",
                              R"(users:(("systemd",pid=1,fd=123),("sshd",pid=812,fd=3)))"}) {
        INFO(users);
        const auto f = stubs.probe(std::string("LISTEN 0      4096         0.0.0.0:22        "
                                               "0.0.0.0:*    ") +
                                   users);
        CHECK(f.listener_pid == 812);
        CHECK(f.listen_port == 22);
        CHECK(f.listen_address == "10.0.2.15");
        CHECK(f.client_address == "10.0.2.2");
    }
}

TEST_CASE("on Debian 13 the probe takes the sshd listener, the only holder of the socket",
          "[harden][cloud-image][probe]") {
    const Stubs stubs;
    const auto f = stubs.probe(R"(LISTEN 0      128          0.0.0.0:22        0.0.0.0:*    )"
                               R"(users:(("sshd",pid=640,fd=6)))");
    CHECK(f.listener_pid == 640);
    CHECK(f.reload_command() == "kill -HUP 640"); // no systemd on this machine
}

TEST_CASE("a socket held by systemd alone never makes pid 1 the listener to HUP",
          "[harden][cloud-image][probe]") {
    // Debian's optional ssh.socket starts one "sshd -i" per connection (Accept=yes): no daemon
    // holds the socket. A HUP to pid 1 would reload systemd, never sshd.
    const Stubs stubs;
    const auto f = stubs.probe(R"(LISTEN 0      4096               *:22              *:*    )"
                               R"(users:(("systemd",pid=1,fd=51)))");
    CHECK(f.listener_pid != 1);
    CHECK(f.reload_command() != "kill -HUP 1");
}

TEST_CASE("the probe hashes sshd -T for the same connection spec that labctl checks after "
          "applying",
          "[harden][cloud-image][probe]") {
    const Stubs stubs;
    const auto f =
        stubs.probe(R"(LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=640,fd=6)))");
    REQUIRE(f.sshd == (stubs.dir.path() / "sshd").string());
    REQUIRE_FALSE(f.effective_sha256.empty());
    // What apply runs on the first session, with the facts of this probe.
    const auto after = stubs.sh(harden::effective_settings_command(f, "labctl"), "");
    REQUIRE(after.ok());
    CHECK(test::contains(after.out,
                         "user=labctl,host=localhost,addr=10.0.2.2,laddr=10.0.2.15,lport=22\n"));
    CHECK(harden::effective_fingerprint(after.out) == f.effective_sha256);
}
