// Fault case of issue #20: the private key labctl is configured to use exists but cannot be
// used. The tests run as root, which ignores mode bits, so "unreadable" is made in ways root sees
// too, each through the labctl binary (`labctl harden` against the sshd fixture, the first stage
// that needs the key) with a bound on its run time:
// - a FIFO (opening it for reading would block until a writer comes: labctl must not open it),
// - a directory,
// - a regular 0600 file the user running labctl cannot read (labctl run as a throwaway user
//   through setpriv, the key owned by root),
// - a regular 0600 file holding garbage (readable, but no key).
// Exit codes: the first three are refused when lab.yaml is loaded (`ssh.private_key ... is not
// a file` / `cannot be read`): a configuration problem the user fixes on this machine, found
// before anything connects, so exit 2 like every other config error. The garbage key can only be
// judged by the SSH library while authenticating: exit 5 (SSH failed), naming the key path in
// the "tried" list. Every message names the key path.

#include <fmt/format.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>

#include <labctl/core/process.hpp>

#include "fault_support.hpp"
#include "sshd.hpp"
#include "support.hpp"
#include "test_user.hpp"

using namespace labctl;
using namespace std::chrono_literals;
using labctl::test::TempDir;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

using labctl::test::contains;

std::string lab_yaml(const test::SshServer& sshd, const std::string& user, const std::string& key) {
    return fmt::format(R"(version: 1
project: keyfault
network:
  cidr: 127.0.0.0/24
ssh:
  user: {}
  port: {}
  private_key: {}
  known_hosts: {}
vms:
  - name: box
    ip: 127.0.0.5
hardening:
  revert_seconds: 60
  # the host parts would change this machine: a VM gets them (e2e)
  firewall: false
  fail2ban: false
  auditd: false
  sysctl: false
)",
                       user, sshd.port(), key, sshd.known_hosts().string());
}

struct Run {
    ProcessResult r;
    std::chrono::milliseconds took{0};
};

/// `labctl harden -f lab`, bounded: a labctl blocked on the key would be killed at 20 s, and the
/// test then fails on the bound and the exit code.
Run harden(const std::string& lab, const std::vector<std::string>& prefix = {}) {
    std::vector<std::string> argv = prefix;
    argv.push_back(test::labctl_binary().string());
    for (const char* a : {"harden", "-f"})
        argv.emplace_back(a);
    argv.push_back(lab);
    ProcessOptions po;
    po.timeout = 20s;
    po.env = {{"NO_COLOR", "1"}};
    const auto t0 = Clock::now();
    Run run;
    run.r = run_process(argv, po);
    run.took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
    return run;
}

/// Nothing left behind: labctl is gone (the sshd fixture is this test's only child), the fixture
/// holds no session for it (sshd's per-connection children end soon after the client), and
/// `dir` holds only the files the test put there.
void check_nothing_left(const test::SshServer& sshd, const TempDir& dir,
                        std::vector<std::string> expected) {
    const pid_t listener = test::pid_of_listener(sshd);
    CHECK(listener > 0);
    CHECK(test::children_of(::getpid()) == std::vector<pid_t>{listener});
    CHECK(test::wait_until([&] { return test::descendants(listener).empty(); }, 5s));
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(dir.path()))
        files.push_back(e.path().filename().string());
    std::sort(files.begin(), files.end());
    std::sort(expected.begin(), expected.end());
    CHECK(files == expected);
}

} // namespace

TEST_CASE("a FIFO as the SSH private key is refused at once with exit 2 naming the path, "
          "without blocking on it",
          "[fault][key]") {
    test::TestUser user;
    test::SshServer sshd({.listen_address = "127.0.0.5"});
    TempDir dir;
    const auto key = dir.path() / "id_fifo";
    REQUIRE(::mkfifo(key.c_str(), 0600) == 0);
    const auto lab = dir.write("lab.yaml", lab_yaml(sshd, user.name(), key.string())).string();
    const auto run = harden(lab);
    INFO(run.r.err << "\ntook " << run.took.count() << " ms");
    CHECK_FALSE(run.r.timed_out);
    CHECK(run.r.exit_code == 2);
    CHECK(contains(run.r.err, key.string()));
    CHECK(contains(run.r.err, "is not a file"));
    CHECK(run.took < 5s);
    check_nothing_left(sshd, dir, {"id_fifo", "lab.yaml"});
}

TEST_CASE("a directory as the SSH private key is refused with exit 2 naming the path",
          "[fault][key]") {
    test::TestUser user;
    test::SshServer sshd({.listen_address = "127.0.0.5"});
    TempDir dir;
    const auto key = dir.path() / "id_dir";
    fs::create_directories(key);
    fs::permissions(key, fs::perms::owner_all);
    const auto lab = dir.write("lab.yaml", lab_yaml(sshd, user.name(), key.string())).string();
    const auto run = harden(lab);
    INFO(run.r.err << "\ntook " << run.took.count() << " ms");
    CHECK(run.r.exit_code == 2);
    CHECK(contains(run.r.err, key.string()));
    CHECK(contains(run.r.err, "is not a file"));
    CHECK(run.took < 5s);
    check_nothing_left(sshd, dir, {"id_dir", "lab.yaml"});
}

TEST_CASE("an SSH private key the user running labctl cannot read is refused with exit 2 "
          "naming the path",
          "[fault][key]") {
    test::TestUser user;
    test::SshServer sshd({.listen_address = "127.0.0.5"});
    TempDir dir;
    // Everything but the key is readable for the throwaway user; the key stays root's, 0600.
    fs::permissions(dir.path(), fs::perms::owner_all | fs::perms::group_read |
                                    fs::perms::group_exec | fs::perms::others_read |
                                    fs::perms::others_exec);
    const auto key = dir.path() / "id_ed25519";
    fs::copy_file(sshd.client_key(), key);
    fs::permissions(key, fs::perms::owner_read | fs::perms::owner_write);
    const auto lab_file = dir.write("lab.yaml", lab_yaml(sshd, user.name(), key.string()));
    fs::permissions(lab_file, fs::perms::owner_read | fs::perms::owner_write |
                                  fs::perms::group_read | fs::perms::others_read);
    const passwd* pw = ::getpwnam(user.name().c_str());
    REQUIRE(pw != nullptr);
    // setpriv drops root for the labctl process only (real and effective ids, no groups).
    const auto run =
        harden(lab_file.string(), {"setpriv", fmt::format("--reuid={}", pw->pw_uid),
                                   fmt::format("--regid={}", pw->pw_gid), "--clear-groups", "--"});
    INFO(run.r.err << "\ntook " << run.took.count() << " ms");
    CHECK(run.r.exit_code == 2);
    CHECK(contains(run.r.err, key.string()));
    CHECK(contains(run.r.err, "cannot be read: Permission denied"));
    CHECK(run.took < 5s);
    check_nothing_left(sshd, dir, {"id_ed25519", "lab.yaml"});
}

TEST_CASE("an SSH private key file holding garbage fails with exit 5 saying the key could not be "
          "parsed, naming its path",
          "[fault][key]") {
    test::TestUser user;
    test::SshServer sshd({.listen_address = "127.0.0.5"});
    TempDir dir;
    const auto key = dir.write("id_garbage", "this is not a private key\n\x01\x02\x03\n");
    fs::permissions(key, fs::perms::owner_read | fs::perms::owner_write);
    const auto lab = dir.write("lab.yaml", lab_yaml(sshd, user.name(), key.string())).string();
    const auto run = harden(lab);
    INFO(run.r.err << "\ntook " << run.took.count() << " ms");
    CHECK(run.r.exit_code == 5);
    CHECK(contains(run.r.err, "the private key " + key.string() + " could not be read or parsed"));
    CHECK(contains(run.r.err, "ssh-keygen -y -f " + key.string()));
    CHECK_FALSE(contains(run.r.err, "refused"));
    CHECK(run.took < 10s);
    check_nothing_left(sshd, dir, {"id_garbage", "lab.yaml"});
}
