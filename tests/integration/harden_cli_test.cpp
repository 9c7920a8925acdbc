// `labctl harden` and `labctl ssh` end to end through the binary, against a real sshd on
// loopback with a lab.yaml that points at it.

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include <labctl/core/process.hpp>

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
  # the host parts would change this machine: a VM gets them (e2e)
  firewall: false
  fail2ban: false
  auditd: false
  sysctl: false
)",
                       user, sshd.port(), sshd.client_key().string(), known_hosts);
}

using labctl::test::contains;

/// A password-accepting sshd with drop-ins on 127.0.0.2 for a test user, and its lab.yaml.
struct HardenLab {
    test::TestUser user;
    test::SshServer sshd{
        {.include_dropins = true, .password_auth = true, .listen_address = "127.0.0.2"}};
    test::TempDir dir;
    std::string lab =
        dir.write("lab.yaml", lab_yaml(sshd, user.name(), sshd.known_hosts().string())).string();
};

} // namespace

TEST_CASE("labctl harden hardens the lab VM, and a second run changes nothing", "[harden][cli]") {
    HardenLab h;
    const auto& [user, sshd, dir, lab] = h;
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
    CHECK(contains(second.out, "match the hardening of"));
    CHECK(contains(second.err, "already hardened, nothing changed (the record matches)"));

    // labctl ssh uses the same pinned known_hosts through the system ssh.
    const auto ssh = test::run_labctl({"ssh", "-f", lab, "box", "--", "echo", "hello-from-box"});
    INFO(ssh.err);
    CHECK(ssh.exit_code == 0);
    CHECK(ssh.out == "hello-from-box\n");
    const auto config = test::read_file(dir.path() / ".labctl" / "ssh_config");
    CHECK(contains(config, "StrictHostKeyChecking yes"));
    CHECK(contains(config, "UserKnownHostsFile " + sshd.known_hosts().string()));
}

namespace {
/// The steps of the one host of a `labctl harden --output json` run that exited 0.
std::vector<std::string> harden_steps(const std::string& lab, nlohmann::json* out = nullptr) {
    const auto r = test::run_labctl({"harden", "-f", lab, "--output", "json"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const auto j = nlohmann::json::parse(r.out)["hosts"][0];
    if (out != nullptr)
        *out = j;
    std::vector<std::string> steps;
    for (const auto& s : j["steps"])
        steps.push_back(s["step"].get<std::string>());
    return steps;
}
bool has(const std::vector<std::string>& steps, const std::string& step) {
    return std::find(steps.begin(), steps.end(), step) != steps.end();
}
} // namespace

TEST_CASE("harden drift: a matching record proves the host in one probe, and an edited drop-in, an "
          "unlocked password, another sshd setting or a lost record are re-applied and re-checked",
          "[harden][cli][converge]") {
    HardenLab h;
    const auto& [user, sshd, dir, lab] = h;
    REQUIRE(has(harden_steps(lab), "reload sshd"));
    const auto dropin = sshd.dropin_dir() / "01-labctl.conf";
    const auto record = sshd.dropin_dir() / "01-labctl.conf.labctl-applied";
    REQUIRE(std::filesystem::exists(record));
    CHECK((std::filesystem::status(record).permissions() & std::filesystem::perms::all) ==
          (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
    const auto hardened = test::read_file(dropin);

    // Nothing changed: only the probe, no new logins and no sshd -T of its own.
    nlohmann::json j;
    auto steps = harden_steps(lab, &j);
    CHECK(steps == std::vector<std::string>{"record"});
    CHECK(j["converge"]["result"] == "unchanged");
    CHECK(j["converge"]["probe"] == "kept facts"); // the cheap probe, no discovery

    struct Case {
        std::string name;
        std::function<void()> cause;
        std::string drift;
        std::string repair_step; ///< a step that proves the full run
    };
    const std::vector<Case> cases{
        {"the drop-in edited by hand",
         [&] { std::ofstream(dropin, std::ios::app) << "MaxAuthTries 6\n"; },
         "the drop-in differs from the policy", "reload sshd"},
        {"the password unlocked",
         [&] {
             REQUIRE(run_process({"usermod", "-p", "x", user.name()}).ok());
         },
         "not locked", "passwd -l"},
        {"another drop-in changing an effective setting",
         [&] { std::ofstream(sshd.dropin_dir() / "50-extra.conf") << "MaxSessions 4\n"; },
         "sshd's effective settings changed", "new session"},
        {"the record removed", [&] { std::filesystem::remove(record); },
         "no record of an earlier hardening", "new session"},
        {"the record corrupted", [&] { std::ofstream(record) << "{\"format\": 1,"; }, "unreadable",
         "new session"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        c.cause();
        steps = harden_steps(lab, &j);
        CHECK(j["converge"]["result"] == "applied");
        CHECK(j["converge"]["probe"] == "full");
        CHECK(contains(j["converge"]["drift"].get<std::string>(), c.drift));
        CHECK(has(steps, c.repair_step));
        CHECK(has(steps, "sshd -T"));
        CHECK(test::read_file(dropin) == hardened);
        CHECK(user.password_state() == "L");
        CHECK(harden_steps(lab) == std::vector<std::string>{"record"});
    }

    // Kept facts from another OpenSSH (its binaries' stamp differs) are not trusted: the full
    // probe runs, and finds the host as recorded.
    const auto kept = fmt::format("/var/lib/labctl/harden/{}_{}", sshd.host(), sshd.port());
    REQUIRE(std::filesystem::exists(kept));
    auto text = test::read_file(kept);
    text.replace(text.find("stamp="), 6, "stamp=1.2 ");
    std::ofstream(kept) << text;
    harden_steps(lab, &j);
    CHECK(j["converge"]["probe"] == "full");
    CHECK(j["converge"]["result"] == "unchanged");
    CHECK(j["converge"]["drift"] == "");
    harden_steps(lab, &j); // the facts were kept again
    CHECK(j["converge"]["probe"] == "kept facts");

    // A setting that undoes the hardening is found by the full check and fails it (exit 6): it
    // is another file's, which labctl does not remove.
    std::ofstream(sshd.dropin_dir() / "00-weak.conf") << "PasswordAuthentication yes\n";
    const auto weak = test::run_labctl({"harden", "-f", lab});
    CHECK(weak.exit_code == 6);
    CHECK(contains(weak.err, "passwordauthentication is 'yes'"));
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
