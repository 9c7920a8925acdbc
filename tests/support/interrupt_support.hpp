#pragma once
// Helpers for the Ctrl-C fault cases (header-only): the labctl binary run as a terminal's
// foreground job and interrupted the way a terminal does, programs that stand in for the
// target's own (first in the sshd fixture's PATH and in sudo's secure_path) and carry a marker
// in their command lines, and the checks every interrupted run must pass.
//
// The signal: a terminal's Ctrl-C is SIGINT to the foreground process group, and that is what
// LabctlJob::ctrl_c sends (kill(-pgid)). It is the realistic signal and it does not let the test
// do labctl's work: labctl starts every local child in a process group of its own
// (core::run_process), so the group holds labctl alone and the children only end if labctl
// ends them. Anything still in labctl's group after it exited is a leak, checked as such.

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <pwd.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "fault_support.hpp"
#include "support.hpp"

namespace labctl::test {

inline long ms(std::chrono::steady_clock::duration d) {
    return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

/// Programs for the target's PATH, in a directory of their own: each is a shell script the test
/// writes, and `sleeper()` is a copy of sleep named after the marker, so the test sees what runs
/// (and that it is gone) by command line. What a script answers in place of a real program is
/// the test's, which cites the upstream source it reproduces where it answers at all (most
/// only block, which no upstream answer is).
class Fakes {
public:
    explicit Fakes(const std::string& marker) : m_marker(marker) {
        namespace fs = std::filesystem;
        fs::permissions(m_dir.path(), fs::perms::owner_all | fs::perms::group_read |
                                          fs::perms::group_exec | fs::perms::others_read |
                                          fs::perms::others_exec);
        copy_program("/bin/sleep", marker + "-sleep");
    }
    /// `name` as a /bin/sh script with `body`.
    std::filesystem::path script(const std::string& name, const std::string& body) const {
        const auto p = m_dir.write(name, "#!/bin/sh\n" + body);
        executable(p);
        return p;
    }
    /// A copy of `program` named `name` (its command line then shows the marker).
    std::filesystem::path copy_program(const std::string& program, const std::string& name) const {
        const auto p = m_dir.path() / name;
        std::filesystem::copy_file(program, p);
        executable(p);
        return p;
    }
    /// The marker-named sleep, as a command that blocks for 10 minutes.
    std::string sleeper() const {
        return fmt::format("{}/{}-sleep 600", m_dir.path().string(), m_marker);
    }
    std::string path() const { return m_dir.path().string(); }
    /// The sshd_config line that puts the fakes first in every session's PATH.
    std::string sshd_setenv() const {
        return fmt::format("SetEnv PATH={}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                           "/sbin:/bin\n",
                           path());
    }

private:
    static void executable(const std::filesystem::path& p) {
        namespace fs = std::filesystem;
        fs::permissions(p, fs::perms::all & ~fs::perms::group_write & ~fs::perms::others_write);
    }
    std::string m_marker;
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
        std::filesystem::permissions(m_file, std::filesystem::perms::owner_read |
                                                 std::filesystem::perms::group_read);
    }
    ~SudoPath() {
        std::error_code ec;
        std::filesystem::remove(m_file, ec);
    }
    SudoPath(const SudoPath&) = delete;
    SudoPath& operator=(const SudoPath&) = delete;

private:
    std::filesystem::path m_file;
};

/// Makes `dir` and its parents up to $TMPDIR reachable and `dir` writable for `user`.
inline void give_to(const std::filesystem::path& dir, const std::string& user) {
    const passwd* pw = ::getpwnam(user.c_str());
    REQUIRE(pw != nullptr);
    REQUIRE(::chown(dir.c_str(), pw->pw_uid, pw->pw_gid) == 0);
    for (auto p = dir.parent_path(); p != p.root_path() && p != "/tmp"; p = p.parent_path())
        std::filesystem::permissions(
            p, std::filesystem::perms::others_exec | std::filesystem::perms::group_exec,
            std::filesystem::perm_options::add);
}

/// Members of process group `pgid` that are alive (not zombies).
inline std::vector<pid_t> group_members(pid_t pgid) {
    std::vector<pid_t> out;
    for (const pid_t p : all_pids()) {
        const std::string stat = proc_file(p, "stat");
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

inline bool alive(pid_t p) {
    const auto [ppid, state] = process_parent(p);
    return ppid >= 0 && state != 'Z';
}

/// Files a run may leave only by mistake: core's write_file_atomic temporaries (`*.tmp.XXXXXX`),
/// SFTP upload temporaries (`*.labctl-tmp-*`), image build and `image build --out` temporaries,
/// upload markers (`uploads/*.unfinished`) and ssh ControlMaster sockets (`cm-*`), below `dir`.
inline std::vector<std::string> temp_files_below(const std::filesystem::path& dir) {
    std::vector<std::string> out;
    std::error_code ec;
    if (!std::filesystem::exists(dir, ec))
        return out;
    for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
        const auto name = it->path().filename().string();
        if (contains(name, ".tmp.") || contains(name, ".labctl-tmp") ||
            name.rfind(".build-", 0) == 0 || contains(name, ".unfinished") ||
            name.rfind("cm-", 0) == 0 || name.rfind("labctl-save-", 0) == 0)
            out.push_back(it->path().string());
    }
    return out;
}

/// The labctl binary run as a terminal's foreground job: its own process group, stdout/stderr to
/// files, TMPDIR a fresh directory, CI unset, NO_COLOR set.
class LabctlJob {
public:
    using Clock = std::chrono::steady_clock;

    explicit LabctlJob(const std::vector<std::string>& args,
                       const std::map<std::string, std::string>& env = {}) {
        namespace fs = std::filesystem;
        fs::permissions(m_tmp.path(), fs::perms::owner_all);
        m_out = m_files.path() / "stdout";
        m_err = m_files.path() / "stderr";
        std::vector<std::string> argv{labctl_binary().string()};
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
            for (const auto& [k, v] : env)
                ::setenv(k.c_str(), v.c_str(), 1);
            // The signal handling labctl installs itself; start from the defaults.
            ::signal(SIGINT, SIG_DFL);
            ::signal(SIGTERM, SIG_DFL);
            ::execv(cargv[0], cargv.data());
            ::_exit(127);
        }
        ::setpgid(m_pid, m_pid); // also here, so the group exists before any signal
    }
    ~LabctlJob() {
        if (m_pid > 0 && !m_reaped) {
            ::kill(-m_pid, SIGKILL);
            for (const pid_t p : descendants(m_pid))
                ::kill(p, SIGKILL);
            int st = 0;
            ::waitpid(m_pid, &st, 0);
        }
    }
    LabctlJob(const LabctlJob&) = delete;
    LabctlJob& operator=(const LabctlJob&) = delete;

    pid_t pid() const { return m_pid; }
    std::string err() const { return read_file(m_err); }
    std::string out() const { return read_file(m_out); }
    const std::filesystem::path& tmpdir() const { return m_tmp.path(); }
    bool exited() {
        siginfo_t info{};
        return ::waitid(P_PID, static_cast<id_t>(m_pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
               info.si_pid == m_pid;
    }
    /// Waits until `ready` holds while labctl still runs (false at the bound or when it exited).
    bool wait_for(const std::function<bool()>& ready, std::chrono::milliseconds bound) {
        return wait_until([&] { return exited() || ready(); }, bound) && !exited();
    }

    /// Ctrl-C: SIGINT to the foreground group (labctl's own; see the top of this file).
    void ctrl_c() {
        m_before_signal = descendants(m_pid);
        for (const pid_t p : m_before_signal)
            m_cmdlines[p] = process_cmdline(p);
        m_signalled = Clock::now();
        REQUIRE(::kill(-m_pid, SIGINT) == 0);
    }

    /// Waits (bounded) for the exit without reaping, notes what is still in labctl's group, then
    /// reaps. Returns the exit code, -1 if it did not exit within `bound` (then it is killed).
    int finish(std::chrono::milliseconds bound) {
        if (!wait_until([&] { return exited(); }, bound)) {
            ::kill(-m_pid, SIGKILL);
            return -1;
        }
        m_ended = Clock::now();
        m_left_in_group = group_members(m_pid);
        int st = 0;
        ::waitpid(m_pid, &st, 0);
        m_reaped = true;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    /// What labctl ran at the signal and is still alive `grace` after it exited.
    std::vector<std::string> children_left(std::chrono::milliseconds grace) const {
        wait_until(
            [&] {
                for (const pid_t p : m_before_signal)
                    if (alive(p) && process_cmdline(p) == m_cmdlines.at(p))
                        return false;
                return true;
            },
            grace);
        std::vector<std::string> out;
        for (const pid_t p : m_before_signal)
            if (alive(p) && process_cmdline(p) == m_cmdlines.at(p))
                out.push_back(fmt::format("{} ({})", p, m_cmdlines.at(p)));
        return out;
    }
    /// Whether something whose command line contains `what` ran below labctl at the signal.
    bool ran_at_signal(const std::string& what) const {
        for (const auto& [p, cmd] : m_cmdlines)
            if (contains(cmd, what))
                return true;
        return false;
    }
    std::chrono::milliseconds after_signal() const {
        return std::chrono::duration_cast<std::chrono::milliseconds>(m_ended - m_signalled);
    }
    std::string children_at_signal() const {
        std::string s;
        for (const auto& [p, cmd] : m_cmdlines)
            s += fmt::format("\n  {} {}", p, cmd);
        return s;
    }
    const std::vector<pid_t>& left_in_group() const { return m_left_in_group; }
    std::vector<std::string> tmp_left() const {
        std::vector<std::string> out;
        for (const auto& e : std::filesystem::recursive_directory_iterator(m_tmp.path()))
            out.push_back(e.path().string());
        return out;
    }

private:
    TempDir m_tmp;
    TempDir m_files;
    std::filesystem::path m_out, m_err;
    pid_t m_pid = -1;
    bool m_reaped = false;
    Clock::time_point m_signalled, m_ended;
    std::vector<pid_t> m_before_signal, m_left_in_group;
    std::map<pid_t, std::string> m_cmdlines;
};

/// What every interrupted binary run must show: it ended within `bound` after the signal, with
/// exit 130 and "labctl: error: interrupted"; nothing it ran is alive (its group, every
/// descendant it had at the signal), its $TMPDIR is empty, and no process whose command line
/// holds `marker` (what it ran on the target) is left 3 s after it exited.
inline void check_interrupted_cleanly(LabctlJob& job, std::chrono::milliseconds bound,
                                      const std::string& marker) {
    const int code = job.finish(bound);
    INFO("stderr:\n" << job.err());
    INFO("running below labctl at the signal:" << job.children_at_signal());
    REQUIRE(code != -1); // it ended within the bound
    INFO("ended " << job.after_signal().count() << " ms after SIGINT (bound " << bound.count()
                  << " ms)");
    std::printf("labctl exited %d, %ld ms after SIGINT (bound %ld ms); below it at the signal:%s\n",
                code, static_cast<long>(job.after_signal().count()),
                static_cast<long>(bound.count()), job.children_at_signal().c_str());
    CHECK(code == 130);
    CHECK(contains(job.err(), "labctl: error: interrupted"));
    CHECK(job.after_signal() < bound);
    CHECK(job.left_in_group().empty());
    const auto children = job.children_left(std::chrono::milliseconds(1000));
    INFO("still alive: " << fmt::format("{}", fmt::join(children, "; ")));
    CHECK(children.empty());
    CHECK(job.tmp_left().empty());
    const bool remote_gone = wait_gone(marker, std::chrono::milliseconds(3000));
    std::string left;
    for (const pid_t p : processes_matching(marker))
        left += fmt::format("\n  {} (state {}, ppid {}): {}", p, process_parent(p).second,
                            process_parent(p).first, process_cmdline(p));
    INFO("remote processes left:" << left);
    if (!remote_gone)
        kill_matching(marker);
    CHECK(remote_gone);
}

} // namespace labctl::test
