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

// Splits complete lines out of `buf` and hands them to `cb`; the remainder stays in `buf`.
void drain_lines(std::string& buf, const std::function<void(const std::string&)>& cb) {
    if (!cb)
        return;
    std::size_t start = 0;
    for (std::size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1)
        cb(buf.substr(start, nl - start));
    buf.erase(0, start);
}

} // namespace

std::optional<std::string> find_program(const std::string& program) {
    if (program.find('/') != std::string::npos)
        return ::access(program.c_str(), X_OK) == 0 ? std::optional(program) : std::nullopt;
    const char* path = std::getenv("PATH");
    std::string_view p = path ? path : "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
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

ProcessResult run_process(const std::vector<std::string>& argv, const ProcessOptions& options) {
    if (argv.empty())
        throw Error(ExitCode::internal, "run_process: empty argv");
    const auto started = std::chrono::steady_clock::now();

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
    // dispositions, since labctl ignores SIGPIPE and children must not inherit that.
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

    // posix_spawnp would search the *parent's* PATH; resolve with the child's PATH if overridden.
    std::string program = argv[0];
    if (auto it = options.env.find("PATH");
        it != options.env.end() && program.find('/') == std::string::npos) {
        std::string_view p = it->second;
        while (!p.empty()) {
            const auto colon = p.find(':');
            std::string cand = std::string(p.substr(0, colon)) + "/" + argv[0];
            p = colon == std::string_view::npos ? std::string_view{} : p.substr(colon + 1);
            if (::access(cand.c_str(), X_OK) == 0) {
                program = cand;
                break;
            }
        }
    }

    pid_t pid = -1;
    const int rc = posix_spawnp(&pid, program.c_str(), &fa, &attr, cargv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0)
        throw Error(ExitCode::internal,
                    fmt::format("cannot run '{}': {}", argv[0], std::strerror(rc)),
                    rc == ENOENT ? fmt::format("install '{}' (scripts/install-deps)", argv[0])
                                 : std::string{});
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

    bool killed = false;
    auto deadline = options.timeout.count() > 0 ? started + options.timeout
                                                : std::chrono::steady_clock::time_point::max();
    std::array<char, 65536> buf{};
    while (out_r.fd >= 0 || err_r.fd >= 0) {
        std::array<pollfd, 3> fds{};
        nfds_t n = 0;
        if (out_r.fd >= 0)
            fds[n++] = {out_r.fd, POLLIN, 0};
        if (err_r.fd >= 0)
            fds[n++] = {err_r.fd, POLLIN, 0};
        if (in_w.fd >= 0)
            fds[n++] = {in_w.fd, POLLOUT, 0};
        int wait_ms = 200;
        if (deadline != std::chrono::steady_clock::time_point::max()) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            wait_ms = static_cast<int>(std::clamp<long long>(left.count(), 0, 200));
        }
        const int pr = ::poll(fds.data(), n, wait_ms);
        if (pr < 0 && errno != EINTR)
            break;
        if (!killed && std::chrono::steady_clock::now() >= deadline) {
            ::kill(-pid, SIGTERM);
            ::usleep(200'000);
            ::kill(-pid, SIGKILL);
            killed = true;
            result.timed_out = true;
        }
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
                drain_lines(partial, is_out ? options.on_stdout_line : options.on_stderr_line);
            } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
                (is_out ? out_r : err_r).reset();
            }
        }
    }
    in_w.reset();
    if (options.on_stdout_line && !out_partial.empty())
        options.on_stdout_line(out_partial);
    if (options.on_stderr_line && !err_partial.empty())
        options.on_stderr_line(err_partial);

    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status))
        result.exit_code = WEXITSTATUS(status);
    else if (WIFSIGNALED(status))
        result.exit_code = 128 + WTERMSIG(status);
    result.elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - started);
    return result;
}

} // namespace labctl
