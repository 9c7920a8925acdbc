// `labctl harden` and `labctl ssh` end to end through the binary, against a real sshd on
// loopback with a lab.yaml that points at it.

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "sshd.hpp"
#include "test_user.hpp"

using namespace labctl;

namespace {

std::string lab_yaml(const test::SshServer& sshd, const std::string& user,
                     const std::string& known_hosts) {
    return fmt::format(R"(version: 1
project: hcli
network:
  cidr: 127.0.0.0/24
ssh:
  user: {}
  port: {}
  private_key: {}
  known_hosts: {}
vms:
  - name: box
    ip: 127.0.0.2
hardening:
  revert_seconds: 60
)",
                       user, sshd.port(), sshd.client_key().string(), known_hosts);
}

using labctl::test::contains;

} // namespace

TEST_CASE("labctl harden hardens the lab VM, and a second run changes nothing", "[harden][cli]") {
    test::TestUser user;
    test::SshServer sshd(
        {.include_dropins = true, .password_auth = true, .listen_address = "127.0.0.2"});
    test::TempDir dir;
    const auto lab =
        dir.write("lab.yaml", lab_yaml(sshd, user.name(), sshd.known_hosts().string())).string();
    const auto first = test::run_labctl({"harden", "-f", lab, "--output", "json"});
    INFO(first.err);
    REQUIRE(first.exit_code == 0);
    const auto j = nlohmann::json::parse(first.out);
    CHECK(j["hosts"][0]["host"] == "box");
    CHECK(j["hosts"][0]["changed"] == true);
    CHECK(user.password_state() == "L");

    const auto second = test::run_labctl({"harden", "-f", lab});
    INFO(second.err);
    CHECK(second.exit_code == 0);
    CHECK(contains(second.out, "already up to date"));
    CHECK(contains(second.err, "already hardened, nothing changed"));

    // labctl ssh uses the same pinned known_hosts through the system ssh.
    const auto ssh = test::run_labctl({"ssh", "-f", lab, "box", "--", "echo", "hello-from-box"});
    INFO(ssh.err);
    CHECK(ssh.exit_code == 0);
    CHECK(ssh.out == "hello-from-box\n");
    const auto config = test::read_file(dir.path() / ".labctl" / "ssh_config");
    CHECK(contains(config, "StrictHostKeyChecking yes"));
    CHECK(contains(config, "UserKnownHostsFile " + sshd.known_hosts().string()));
}

TEST_CASE("labctl harden refuses a host whose key is not pinned (exit 5)", "[harden][cli]") {
    test::SshServer sshd;
    test::TempDir dir;
    const auto empty = dir.write("known_hosts", "").string();
    // The user never matters: the host key check comes first.
    const auto lab = dir.write("lab.yaml", lab_yaml(sshd, "labctl", empty)).string();
    const auto r = test::run_labctl(
        {"harden", "-f", lab, "--host", fmt::format("{}:{}", sshd.host(), sshd.port())});
    CHECK(r.exit_code == 5);
    CHECK(contains(r.err, "is not pinned"));
}

TEST_CASE("labctl harden on an unreachable host exits 4 naming the ssh phase", "[harden][cli]") {
    test::SshServer sshd; // only for the key files
    test::TempDir dir;
    const auto lab =
        dir.write("lab.yaml", lab_yaml(sshd, "labctl", sshd.known_hosts().string())).string();
    const int closed = test::free_port();
    const auto r = test::run_labctl(
        {"harden", "-f", lab, "--wait", "2s", "--host", fmt::format("127.0.0.1:{}", closed)});
    CHECK(r.exit_code == 4);
    CHECK(contains(r.err, "waiting for ssh on 127.0.0.1:" + std::to_string(closed)));
}

TEST_CASE("labctl harden refuses a host whose key differs from the pinned one (exit 5)",
          "[harden][cli]") {
    test::SshServer sshd;
    test::TempDir dir;
    REQUIRE(run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                         (dir.path() / "other").string()})
                .ok());
    const auto other = test::read_file(dir.path() / "other.pub");
    const auto known =
        dir.write("known_hosts", fmt::format("[{}]:{} {}", sshd.host(), sshd.port(), other))
            .string();
    const auto lab = dir.write("lab.yaml", lab_yaml(sshd, "labctl", known)).string();
    const auto r = test::run_labctl(
        {"harden", "-f", lab, "--host", fmt::format("{}:{}", sshd.host(), sshd.port())});
    CHECK(r.exit_code == 5);
    CHECK(contains(r.err, "host key mismatch"));
    CHECK(contains(r.err, "hint: someone may be intercepting"));
}

TEST_CASE("labctl up --stage runs only that stage, times it and prints the lab URLs", "[up][cli]") {
    test::TestUser user;
    test::SshServer sshd({.include_dropins = true, .listen_address = "127.0.0.2"});
    test::TempDir dir;
    const auto lab =
        dir.write("lab.yaml", lab_yaml(sshd, user.name(), sshd.known_hosts().string())).string();
    ProcessOptions o;
    o.env["LAB_HOST"] = "127.0.0.1";
    const auto r = test::run_labctl({"up", "--stage", "harden", "-f", lab, "--output", "json"}, o);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const auto j = nlohmann::json::parse(r.out); // only up's summary is on stdout
    REQUIRE(j["stages"].size() == 1);
    CHECK(j["stages"][0]["stage"] == "harden");
    CHECK(j["stages"][0]["result"] == "ok");
    CHECK(j["urls"]["grafana"] == "http://127.0.0.1:3000");
    CHECK(j["urls"]["frontend"] == "http://127.0.0.1:8080");
    CHECK(contains(r.err, "==> [1/1] harden"));

    const auto none = test::run_labctl({"up", "--from", "verify", "--skip", "verify", "-f", lab});
    CHECK(none.exit_code == 2);
    CHECK(contains(none.err, "leave no stage to run"));
}
