// Fault cases of issue #20, "Ctrl-C in every stage": SIGINT while a stage is busy ends it with
// exit 130 ("interrupted") within a stated bound, and leaves nothing behind: no child process of
// labctl, no remote command still running on the sshd fixture, no temp file in labctl's
// $TMPDIR, no libvirt object of the run.
// - provision: in-process (provision::provision, as `labctl provision` calls it), since the
//   binary on libvirt's test driver skips the guest waits (the driver runs no guests) and a
//   test:///<file> state dies with the process that opened it; 4 VMs under --parallel 4 with
//   simulated guests: two never get a lease (ip wait), two reach the sshd fixture and block in
//   `cloud-init status --wait` (a fake that sleeps). The test's own connection shows the rollback.
// - harden, deploy, verify: the labctl binary against the sshd fixture as an existing host
//   (--host / a lab whose VM is the fixture), the signal sent to labctl's process group as a
//   terminal's Ctrl-C does. Harden blocks in its facts probe (a fake `ssh -Q` that sleeps on the
//   target), deploy in compose detection after the rsync (a fake `docker` that sleeps), verify
//   while polling endpoints where nothing answers. The fakes come first in the sshd fixture's
//   PATH (sshd_config SetEnv) and carry a marker in their command lines.

#include <fcntl.h>
#include <fmt/format.h>
#include <pwd.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <labctl/config/loader.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/process.hpp>
#include <labctl/core/signals.hpp>
#include <labctl/provision/inventory.hpp>
#include <labctl/provision/provision.hpp>
#include <labctl/provision/wait.hpp>

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

bool contains(const std::string& hay, const std::string& needle) {
    return hay.find(needle) != std::string::npos;
}

long ms(Clock::duration d) {
    return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

/// Programs that block for 600 s, named so the target's PATH finds them first; each execs a copy
/// of sleep named after `marker`, so the test sees them (and their absence) by command line.
class Fakes {
public:
    Fakes(const std::string& marker, const std::vector<std::string>& names) {
        fs::permissions(m_dir.path(), fs::perms::owner_all | fs::perms::group_read |
                                          fs::perms::group_exec | fs::perms::others_read |
                                          fs::perms::others_exec);
        const auto sleeper = m_dir.path() / (marker + "-sleep");
        fs::copy_file("/bin/sleep", sleeper);
        fs::permissions(sleeper,
                        fs::perms::all & ~fs::perms::group_write & ~fs::perms::others_write);
        for (const auto& n : names) {
            const auto p =
                m_dir.write(n, fmt::format("#!/bin/sh\nexec {} 600\n", sleeper.string()));
            fs::permissions(p, fs::perms::all & ~fs::perms::group_write & ~fs::perms::others_write);
        }
    }
    std::string path() const { return m_dir.path().string(); }
    /// The sshd_config line that puts the fakes first in every session's PATH.
    std::string sshd_setenv() const {
        return fmt::format("SetEnv PATH={}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                           "/sbin:/bin\n",
                           m_dir.path().string());
    }

private:
    TempDir m_dir;
};

/// sudo resets PATH to its secure_path: a sudoers drop-in of the test's own puts the fakes first
/// there too for `user` (removed on destruction).
class SudoPath {
public:
    SudoPath(const std::string& user, const Fakes& fakes)
        : m_file("/etc/sudoers.d/labctl-test-path-" + user) {
        std::ofstream(m_file)
            << "Defaults:" << user << " secure_path=\"" << fakes.path()
            << ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"\n";
        fs::permissions(m_file, fs::perms::owner_read | fs::perms::group_read);
    }
    ~SudoPath() {
        std::error_code ec;
        fs::remove(m_file, ec);
    }
    SudoPath(const SudoPath&) = delete;
    SudoPath& operator=(const SudoPath&) = delete;

private:
    fs::path m_file;
};

/// Makes `dir` and its parents up to the test's directory reachable and `dir` writable for user.
void give_to(const fs::path& dir, const std::string& user) {
    const passwd* pw = ::getpwnam(user.c_str());
    REQUIRE(pw != nullptr);
    REQUIRE(::chown(dir.c_str(), pw->pw_uid, pw->pw_gid) == 0);
    for (auto p = dir.parent_path(); p != p.root_path() && p != "/tmp"; p = p.parent_path())
        fs::permissions(p, fs::perms::others_exec | fs::perms::group_exec, fs::perm_options::add);
}

/// Members of process group `pgid` that are alive (not zombies).
std::vector<pid_t> group_members(pid_t pgid) {
    std::vector<pid_t> out;
    for (const pid_t p : test::all_pids()) {
        std::ifstream in("/proc/" + std::to_string(p) + "/stat");
        std::string stat;
        std::getline(in, stat);
        const auto close = stat.rfind(')');
        if (close == std::string::npos)
            continue;
        std::istringstream rest(stat.substr(close + 1));
        char state = '?';
        long ppid = 0, pgrp = 0;
        rest >> state >> ppid >> pgrp;
        if (pgrp == pgid && state != 'Z')
            out.push_back(p);
    }
    return out;
}

bool alive(pid_t p) {
    const auto [ppid, state] = test::process_parent(p);
    return ppid >= 0 && state != 'Z';
}

/// The labctl binary run as a terminal's foreground job: its own process group, stdout/stderr to
/// files, TMPDIR a fresh directory, CI unset, NO_COLOR set.
class LabctlJob {
public:
    explicit LabctlJob(const std::vector<std::string>& args) {
        fs::permissions(m_tmp.path(), fs::perms::owner_all);
        const auto bin = test::labctl_binary().string();
        m_out = m_files.path() / "stdout";
        m_err = m_files.path() / "stderr";
        std::vector<std::string> argv{bin};
        argv.insert(argv.end(), args.begin(), args.end());
        std::vector<char*> cargv;
        for (auto& a : argv)
            cargv.push_back(a.data());
        cargv.push_back(nullptr);
        const std::string tmpdir = m_tmp.path().string();
        const std::string out = m_out.string(), err = m_err.string();
        m_pid = ::fork();
        REQUIRE(m_pid >= 0);
        if (m_pid == 0) {
            ::setpgid(0, 0);
            const int in = ::open("/dev/null", O_RDONLY);
            const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
            const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (in < 0 || o < 0 || e < 0)
                ::_exit(127);
            ::dup2(in, 0);
            ::dup2(o, 1);
            ::dup2(e, 2);
            ::setenv("TMPDIR", tmpdir.c_str(), 1);
            ::setenv("NO_COLOR", "1", 1);
            ::unsetenv("CI");
            // The signal handling labctl installs itself; start from the defaults.
            ::signal(SIGINT, SIG_DFL);
            ::signal(SIGTERM, SIG_DFL);
            ::execv(cargv[0], cargv.data());
            ::_exit(127);
        }
        ::setpgid(m_pid, m_pid); // also here, so the group exists before any signal
        m_started = Clock::now();
    }
    ~LabctlJob() {
        if (m_pid > 0 && !m_reaped) {
            ::kill(-m_pid, SIGKILL);
            int st = 0;
            ::waitpid(m_pid, &st, 0);
        }
    }
    LabctlJob(const LabctlJob&) = delete;
    LabctlJob& operator=(const LabctlJob&) = delete;

    pid_t pid() const { return m_pid; }
    std::string err() const { return test::read_file(m_err); }
    std::string out() const { return test::read_file(m_out); }
    const fs::path& tmpdir() const { return m_tmp.path(); }
    bool exited() {
        siginfo_t info{};
        return ::waitid(P_PID, static_cast<id_t>(m_pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
               info.si_pid == m_pid;
    }

    /// Ctrl-C: SIGINT to the whole foreground group (labctl and whatever it runs).
    void ctrl_c() {
        m_before_signal = test::descendants(m_pid);
        m_signalled = Clock::now();
        REQUIRE(::kill(-m_pid, SIGINT) == 0);
    }

    /// Waits (bounded) for the exit without reaping, checks the group is empty, then reaps.
    /// Returns the exit code, -1 if it did not exit within `bound` (then it is killed).
    int finish(std::chrono::milliseconds bound) {
        if (!test::wait_until([&] { return exited(); }, bound)) {
            ::kill(-m_pid, SIGKILL);
            return -1;
        }
        m_ended = Clock::now();
        // Still in labctl's group after it exited: something it started and left behind.
        m_left_in_group = group_members(m_pid);
        int st = 0;
        ::waitpid(m_pid, &st, 0);
        m_reaped = true;
        for (const pid_t p : m_before_signal)
            if (alive(p))
                m_left_children.push_back(fmt::format("{} ({})", p, test::process_cmdline(p)));
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    std::chrono::milliseconds after_signal() const {
        return std::chrono::duration_cast<std::chrono::milliseconds>(m_ended - m_signalled);
    }
    std::size_t children_at_signal() const { return m_before_signal.size(); }
    const std::vector<pid_t>& left_in_group() const { return m_left_in_group; }
    const std::vector<std::string>& left_children() const { return m_left_children; }
    std::vector<std::string> tmp_left() const {
        std::vector<std::string> out;
        for (const auto& e : fs::recursive_directory_iterator(m_tmp.path()))
            out.push_back(e.path().string());
        return out;
    }

private:
    TempDir m_tmp;
    TempDir m_files;
    fs::path m_out, m_err;
    pid_t m_pid = -1;
    bool m_reaped = false;
    Clock::time_point m_started, m_signalled, m_ended;
    std::vector<pid_t> m_before_signal, m_left_in_group;
    std::vector<std::string> m_left_children;
};

/// What every interrupted binary run must show.
void check_interrupted_cleanly(LabctlJob& job, std::chrono::milliseconds bound,
                               const std::string& marker) {
    const int code = job.finish(bound);
    INFO("stderr:\n" << job.err());
    REQUIRE(code != -1); // it ended within the bound
    INFO("ended " << job.after_signal().count() << " ms after SIGINT (bound " << bound.count()
                  << " ms); " << job.children_at_signal() << " descendants at the signal");
    CHECK(code == 130);
    CHECK(contains(job.err(), "labctl: error: interrupted"));
    CHECK(job.left_in_group().empty());
    CHECK(job.left_children().empty());
    CHECK(job.tmp_left().empty());
    const bool remote_gone = test::wait_gone(marker, 3s);
    std::string left;
    for (const pid_t p : test::processes_matching(marker))
        left += fmt::format("\n  {} pgid? state {} ppid {}: {}", p, test::process_parent(p).second,
                            test::process_parent(p).first, test::process_cmdline(p));
    INFO("remote processes left:" << left);
    if (!remote_gone)
        test::kill_matching(marker);
    CHECK(remote_gone);
}

std::string host_lab(const test::SshServer& sshd, const std::string& user, const std::string& ip,
                     const TempDir& dir) {
    return fmt::format(R"(version: 1
project: intr
network:
  cidr: 127.0.0.0/24
ssh:
  user: {}
  port: {}
  private_key: {}
  known_hosts: {}
vms:
  - name: box
    ip: {}
hardening:
  revert_seconds: 60
deploy:
  stack_dir: stack
  remote_dir: {}/remote/stack
  project: intr
  wait_timeout: 60
)",
                       user, sshd.port(), sshd.client_key().string(), sshd.known_hosts().string(),
                       ip, dir.path().string());
}

} // namespace

TEST_CASE("Ctrl-C while 4 VMs wait under --parallel 4 (ip wait, blocking cloud-init) ends the "
          "run within 5 s, rolls back every object and leaves no remote command",
          "[fault][interrupt][provision]") {
    const auto marker = test::unique_marker("intr-provision");
    Fakes fakes(marker, {"cloud-init"});
    test::TestUser user; // labctl refuses ssh.user root
    test::SshServer sshd({.extra_config = fakes.sshd_setenv()});
    TempDir dir;
    const auto uri =
        "test://" +
        dir.write("node.xml", test::read_file(test::fixture("libvirt/pool_only.xml"))).string();
    dir.write("images/base.qcow2", test::qcow2_header(2ULL << 30));
    // The lab's key and pins are the fixture's: provision adds the VMs' own pins beside them.
    const auto known = dir.write("known_hosts", test::read_file(sshd.known_hosts()));
    std::string yaml =
        fmt::format(R"(version: 1
project: intr
libvirt:
  uri: {}
  pool: default
  domain_type: qemu
network:
  name: intr-net
  cidr: 10.66.81.0/24
image:
  path: images/base.qcow2
ssh:
  user: {}
  port: {}
  private_key: {}
  known_hosts: {}
vms:
)",
                    uri, user.name(), sshd.port(), sshd.client_key().string(), known.string());
    for (int i = 1; i <= 4; ++i)
        yaml += fmt::format("  - name: vm{}\n    memory: 1GiB\n    disk: 20GiB\n", i);
    config::LoadOptions lo;
    lo.path = dir.write("lab.yaml", yaml).string();
    const auto loaded = config::load_lab(lo);
    std::string diagnostics;
    for (const auto& d : loaded.diagnostics)
        diagnostics += config::format(d) + "\n";
    INFO(diagnostics);
    REQUIRE(loaded.ok());
    const auto spec = *loaded.spec;

    auto session = provision::LibvirtSession::open(uri);
    const auto inventory_names = [&] {
        std::set<std::string> out;
        const auto inv = session.inventory();
        for (const auto& n : inv.networks)
            out.insert("network:" + n.name);
        for (const auto& p : inv.pools)
            for (const auto& v : p.volumes)
                out.insert("volume:" + v.name);
        for (const auto& d : inv.domains)
            out.insert("domain:" + d.name);
        return out;
    };
    const auto before = inventory_names();

    // vm1, vm2 get a lease (the fixture on 127.0.0.1) and block in cloud-init; vm3, vm4 never do.
    struct Guest final : provision::GuestProbe {
        bool leases = false;
        bool running() override { return true; }
        std::optional<std::string> reserved_ip() override { return std::nullopt; }
        std::optional<std::string> lease_ip() override {
            return leases ? std::optional<std::string>("127.0.0.1") : std::nullopt;
        }
        std::optional<std::string> agent_ip() override { return std::nullopt; }
        std::vector<std::string> console_tail() override { return {}; }
    };
    std::atomic<int> waiting{0};
    provision::ProvisionOptions po;
    po.parallel = 4;
    po.deadlines.ip = 120s;
    po.deadlines.ssh = 60s;
    po.deadlines.cloud_init = 300s;
    po.deadlines.poll = 100ms;
    po.probe_factory = [&](const config::VmSpec& vm) {
        auto g = std::make_unique<Guest>();
        g->leases = vm.name == "vm1" || vm.name == "vm2";
        ++waiting;
        return g;
    };

    signals::install();
    signals::reset();
    Clock::time_point signalled{};
    std::atomic<bool> blocked{false};
    std::thread ctrl_c([&] {
        blocked = test::wait_until(
            [&] { return waiting == 4 && test::processes_matching(marker).size() >= 2; }, 30s);
        std::this_thread::sleep_for(200ms); // the ip waits are polling
        signalled = Clock::now();
        ::kill(::getpid(), SIGINT); // what the terminal sends; labctl's handler sets the flag
    });
    int code = 0;
    std::string message;
    const auto t0 = Clock::now();
    try {
        provision::provision(spec, session, po);
    } catch (const Error& e) {
        code = to_int(e.code());
        message = e.what();
    }
    const auto ended = Clock::now();
    ctrl_c.join();
    signals::reset();
    INFO(message);
    REQUIRE(blocked);
    INFO("ended " << ms(ended - signalled) << " ms after SIGINT; run took " << ms(ended - t0)
                  << " ms");
    CHECK(code == 130);
    CHECK(contains(message, "interrupted"));
    CHECK(ended - signalled < 5s);
    CHECK(inventory_names() == before); // every network, volume and domain of the run is gone
    const bool remote_gone = test::wait_gone(marker, 3s);
    if (!remote_gone)
        test::kill_matching(marker);
    CHECK(remote_gone);
    std::vector<pid_t> children;
    for (const pid_t p : test::children_of_self())
        if (p != test::pid_of_listener(sshd))
            children.push_back(p);
    CHECK(children.empty());
}

TEST_CASE("Ctrl-C during harden (blocked in its facts probe on the host) exits 130 within 10 s "
          "and leaves no process, remote command or temp file",
          "[fault][interrupt][harden]") {
    const auto marker = test::unique_marker("intr-harden");
    Fakes fakes(marker, {"ssh"});
    test::TestUser user;
    SudoPath sudo_path(user.name(), fakes); // the facts probe runs through sudo
    test::SshServer sshd({.extra_config = fakes.sshd_setenv(),
                          .include_dropins = true,
                          .listen_address = "127.0.0.2"});
    TempDir dir;
    const auto lab = dir.write("lab.yaml", host_lab(sshd, user.name(), "127.0.0.2", dir)).string();
    LabctlJob job({"harden", "-vv", "-f", lab});
    const bool blocked = test::wait_until(
        [&] { return !test::processes_matching(marker).empty() || job.exited(); }, 30s);
    INFO(job.err());
    REQUIRE(blocked);
    REQUIRE(!job.exited());
    job.ctrl_c();
    check_interrupted_cleanly(job, 10s, marker);
    CHECK(user.password_state() != "L"); // harden never got past its read-only probe
}

TEST_CASE("Ctrl-C during deploy (after the rsync, blocked in compose detection) exits 130 "
          "within 10 s and leaves no process, remote command or temp file",
          "[fault][interrupt][deploy]") {
    const auto marker = test::unique_marker("intr-deploy");
    Fakes fakes(marker, {"docker", "docker-compose"});
    test::TestUser user;
    SudoPath sudo_path(user.name(), fakes); // compose may run through sudo
    test::SshServer sshd({.extra_config = fakes.sshd_setenv(), .listen_address = "127.0.0.3"});
    TempDir dir;
    dir.write("stack/docker-compose.yml", "services:\n  web:\n    image: busybox\n");
    dir.write("stack/www/index.html", "hello\n");
    fs::create_directories(dir.path() / "remote");
    give_to(dir.path() / "remote", user.name());
    const auto lab = dir.write("lab.yaml", host_lab(sshd, user.name(), "127.0.0.3", dir)).string();
    LabctlJob job({"deploy", "-vv", "-f", lab});
    const bool blocked = test::wait_until(
        [&] { return !test::processes_matching(marker).empty() || job.exited(); }, 60s);
    INFO(job.err());
    REQUIRE(blocked);
    REQUIRE(!job.exited());
    job.ctrl_c();
    check_interrupted_cleanly(job, 10s, marker);
}

TEST_CASE("Ctrl-C during verify (polling endpoints where nothing answers) exits 130 within 5 s "
          "and leaves no process or temp file",
          "[fault][interrupt][verify]") {
    const auto marker = test::unique_marker("intr-verify"); // nothing remote runs: stays unused
    test::TestUser user;
    test::SshServer sshd({.listen_address = "127.0.0.4"});
    TempDir dir;
    const auto lab = dir.write("lab.yaml", host_lab(sshd, user.name(), "127.0.0.4", dir)).string();
    LabctlJob job({"verify", "-f", lab, "--host", "127.0.0.4", "--deadline", "120s"});
    // The checks poll for up to 120 s; interrupt them a few polls in.
    std::this_thread::sleep_for(2s);
    INFO(job.err());
    REQUIRE(!job.exited());
    job.ctrl_c();
    check_interrupted_cleanly(job, 5s, marker);
    CHECK(job.after_signal() < 5s);
}
