#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>

#include <labctl/core/error.hpp>
#include <labctl/core/fd.hpp>
#include <labctl/core/process.hpp>
#include <labctl/core/signals.hpp>
#include <labctl/core/text.hpp>

extern char** environ;

namespace labctl {

void make_pipe(Fd& r, Fd& w) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0)
        throw Error(ExitCode::internal, fmt::format("pipe: {}", std::strerror(errno)));
    r.fd = p[0];
    w.fd = p[1];
}

namespace {

/// The one PATH search: the first regular, executable `dir/program` of the colon-separated list
/// (an empty entry is the current directory, as in execvp).
std::optional<std::string> search_path(std::string_view path_list, const std::string& program) {
    std::string_view p = path_list;
    while (!p.empty()) {
        const auto colon = p.find(':');
        const std::string_view dir = p.substr(0, colon);
        p = colon == std::string_view::npos ? std::string_view{} : p.substr(colon + 1);
        // fmt rather than operator+: GCC 12 -O2 reports a bogus -Wrestrict on the latter.
        const std::string full = fmt::format("{}/{}", dir.empty() ? "." : dir, program);
        struct stat st {};
        if (::stat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
            ::access(full.c_str(), X_OK) == 0)
            return full;
    }
    return std::nullopt;
}

constexpr std::string_view k_default_path = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
/// After the child has exited (or was killed), how long the pipes may stay open: a grandchild
/// that escaped the process group (setsid, ssh's ControlPersist master) can hold them forever.
constexpr std::chrono::milliseconds k_drain_after_exit{2000};

using Clock = std::chrono::steady_clock;

/// The spawned child: always reaped. Cancelling is the one path for a timeout, an interrupt and
/// an exception: SIGTERM to the process group, SIGKILL after the grace period.
class Child {
public:
    explicit Child(pid_t pid) : m_pid(pid) {}
    Child(const Child&) = delete;
    Child& operator=(const Child&) = delete;
    ~Child() {
        if (m_reaped)
            return;
        // Unwinding (a callback threw): end the group within the grace period, then reap.
        const auto kill_at = Clock::now() + m_grace;
        if (!m_terminated)
            ::kill(-m_pid, SIGTERM);
        while (!poll_exit() && Clock::now() < kill_at)
            ::usleep(20'000);
        if (!m_reaped) {
            ::kill(-m_pid, SIGKILL);
            int status = 0;
            while (::waitpid(m_pid, &status, 0) < 0 && errno == EINTR) {
            }
        }
    }

    void set_grace(std::chrono::milliseconds g) { m_grace = g; }
    bool reaped() const { return m_reaped; }
    int status() const { return m_status; }

    /// True once the child has exited (reaps it).
    bool poll_exit() {
        if (m_reaped)
            return true;
        int status = 0;
        const pid_t r = ::waitpid(m_pid, &status, WNOHANG);
        if (r == m_pid || (r < 0 && errno == ECHILD)) {
            m_reaped = true;
            m_status = status;
        }
        return m_reaped;
    }

    /// SIGTERM to the group now; advance() sends SIGKILL when the grace period is over.
    void terminate() {
        if (m_terminated)
            return;
        m_terminated = true;
        m_kill_at = Clock::now() + m_grace;
        ::kill(-m_pid, SIGTERM);
    }

    void advance() {
        if (m_terminated && !m_killed && Clock::now() >= m_kill_at) {
            // Also after the leader exited: the rest of its group may still hold the pipes.
            ::kill(-m_pid, SIGKILL);
            m_killed = true;
        }
    }

private:
    pid_t m_pid;
    bool m_reaped = false;
    int m_status = 0;
    bool m_terminated = false;
    bool m_killed = false;
    Clock::time_point m_kill_at{};
    std::chrono::milliseconds m_grace{5000};
};

} // namespace

std::optional<std::string> find_program(const std::string& program) {
    if (program.find('/') != std::string::npos)
        return ::access(program.c_str(), X_OK) == 0 ? std::optional(program) : std::nullopt;
    const char* path = std::getenv("PATH");
    return search_path(path ? std::string_view(path) : k_default_path, program);
}

ProcessResult run_process(const std::vector<std::string>& argv, const ProcessOptions& options) {
    if (argv.empty())
        throw Error(ExitCode::internal, "run_process: empty argv");
    const auto started = Clock::now();
    // An interrupt that arrived before this run is the cleanup's business: cleanup commands
    // (umount, virsh destroy) must still run to the end.
    const bool interruptible = !signals::interrupted();

    Fd in_r, in_w, out_r, out_w, err_r, err_w;
    make_pipe(in_r, in_w);
    if (options.stdout_fd < 0)
        make_pipe(out_r, out_w);
    make_pipe(err_r, err_w);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_r.fd, 0);
    posix_spawn_file_actions_adddup2(&fa, options.stdout_fd >= 0 ? options.stdout_fd : out_w.fd, 1);
    posix_spawn_file_actions_adddup2(&fa, err_w.fd, 2);
    if (options.cwd)
        posix_spawn_file_actions_addchdir_np(&fa, options.cwd->c_str());

    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // Own process group, so a timeout kills the whole tree the program started; default signal
    // dispositions, since labctl ignores SIGPIPE and children must not inherit that. The group
    // also keeps a terminal's Ctrl-C away from the child: run_process forwards it (SIGTERM).
    sigset_t def;
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    sigaddset(&def, SIGINT);
    sigaddset(&def, SIGTERM);
    posix_spawnattr_setsigdefault(&attr, &def);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF);

    std::vector<std::string> env_store;
    for (char** e = environ; *e != nullptr; ++e) {
        std::string_view kv(*e);
        const auto name = kv.substr(0, kv.find('='));
        if (!options.env.contains(std::string(name)))
            env_store.emplace_back(kv);
    }
    for (const auto& [k, v] : options.env)
        env_store.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& s : env_store)
        envp.push_back(s.data());
    envp.push_back(nullptr);

    std::vector<std::string> args = argv;
    std::vector<char*> cargv;
    for (auto& a : args)
        cargv.push_back(a.data());
    cargv.push_back(nullptr);

    // Resolved with the child's PATH (options.env may override it), not posix_spawnp's parent's.
    std::string program = argv[0];
    if (program.find('/') == std::string::npos) {
        const char* parent_path = std::getenv("PATH");
        const auto it = options.env.find("PATH");
        const std::string_view path = it != options.env.end() ? std::string_view(it->second)
                                      : parent_path           ? std::string_view(parent_path)
                                                              : k_default_path;
        if (auto found = search_path(path, program))
            program = std::move(*found);
    }

    pid_t pid = -1;
    const int rc = program.find('/') == std::string::npos
                       ? ENOENT
                       : posix_spawn(&pid, program.c_str(), &fa, &attr, cargv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0)
        throw Error(ExitCode::internal,
                    fmt::format("cannot run '{}': {}", argv[0], std::strerror(rc)),
                    rc == ENOENT ? fmt::format("install '{}' (scripts/install-deps)", argv[0])
                                 : std::string{});
    Child child(pid); // from here on, every way out kills (if needed) and reaps it
    child.set_grace(options.kill_grace);
    in_r.reset();
    out_w.reset();
    err_w.reset();

    ProcessResult result;
    std::string out_partial, err_partial;
    std::string_view to_write = options.stdin_data ? std::string_view(*options.stdin_data) : "";
    if (to_write.empty())
        in_w.reset();
    else
        ::fcntl(in_w.fd, F_SETFL, O_NONBLOCK);

    bool interrupted = false;
    const auto deadline =
        options.timeout.count() > 0 ? started + options.timeout : Clock::time_point::max();
    auto drain_until = Clock::time_point::max();
    std::array<char, 65536> buf{};
    while (!child.reaped() || out_r.fd >= 0 || err_r.fd >= 0) {
        if (child.poll_exit() && drain_until == Clock::time_point::max())
            drain_until = Clock::now() + k_drain_after_exit;
        if (Clock::now() >= drain_until)
            break; // something outside the group holds the pipes: stop waiting for it
        if (!result.timed_out && !interrupted && Clock::now() >= deadline) {
            result.timed_out = true;
            child.terminate();
        }
        if (interruptible && !interrupted && signals::interrupted()) {
            interrupted = true;
            child.terminate();
        }
        child.advance();

        std::array<pollfd, 3> fds{};
        nfds_t n = 0;
        if (out_r.fd >= 0)
            fds[n++] = {out_r.fd, POLLIN, 0};
        if (err_r.fd >= 0)
            fds[n++] = {err_r.fd, POLLIN, 0};
        if (in_w.fd >= 0)
            fds[n++] = {in_w.fd, POLLOUT, 0};
        // Short waits while the child runs without pipes (its exit is polled, not signalled).
        int wait_ms = out_r.fd >= 0 || err_r.fd >= 0 ? 100 : 20;
        if (deadline != Clock::time_point::max() && !result.timed_out) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            wait_ms = static_cast<int>(std::clamp<long long>(left.count(), 0, wait_ms));
        }
        const int pr = ::poll(fds.data(), n, wait_ms);
        if (pr < 0 && errno != EINTR)
            break;
        for (nfds_t i = 0; i < n && pr > 0; ++i) {
            if (fds[i].revents == 0)
                continue;
            if (fds[i].fd == in_w.fd) {
                const ssize_t w = ::write(in_w.fd, to_write.data(), to_write.size());
                if (w > 0)
                    to_write.remove_prefix(static_cast<std::size_t>(w));
                if (w < 0 && errno != EAGAIN && errno != EINTR)
                    to_write = {};
                if (to_write.empty())
                    in_w.reset();
                continue;
            }
            const bool is_out = fds[i].fd == out_r.fd;
            const ssize_t r = ::read(fds[i].fd, buf.data(), buf.size());
            if (r > 0) {
                std::string_view chunk(buf.data(), static_cast<std::size_t>(r));
                (is_out ? result.out : result.err).append(chunk);
                auto& partial = is_out ? out_partial : err_partial;
                partial.append(chunk);
                // May throw: ~Child then ends the group and reaps it.
                take_lines(partial, is_out ? options.on_stdout_line : options.on_stderr_line);
            } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                (is_out ? out_r : err_r).reset();
            }
        }
    }
    in_w.reset();
    out_r.reset();
    err_r.reset();
    take_lines(out_partial, options.on_stdout_line, true);
    take_lines(err_partial, options.on_stderr_line, true);

    const int status = child.status();
    if (WIFEXITED(status))
        result.exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        result.exit_code = 128 + WTERMSIG(status);
    result.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
    if (interrupted)
        throw Interrupted();
    return result;
}

} // namespace labctl
