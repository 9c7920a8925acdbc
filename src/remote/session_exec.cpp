// Session::exec: a remote command with streamed output, a deadline that is always set, and an end
// that always ends the remote process group (timeout, Ctrl-C), or an error naming the host and
// the phase when the connection is lost.

#include <fmt/format.h>
#include <libssh2.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>

#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/signals.hpp>
#include <labctl/core/text.hpp>
#include <labctl/remote/session.hpp>

#include "session_impl.hpp"
#include "tunnel.hpp"

namespace labctl::remote {

using namespace detail;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view k_pgid_tag = "labctl-pgid:";
/// After TERM, how long the remote group gets before KILL.
constexpr auto k_kill_grace = 2s;

/// Runs `command` as a process group (and session) of its own on the target and reports its
/// PGID as the first stderr line, so a timeout can end the whole tree: `kill -- -PGID`. setsid
/// -w keeps the exit status; without setsid (not Debian) the shell sshd started is already a
/// session leader, so its $$ is the group.
std::string wrap_in_group(const std::string& command, const std::string& shell) {
    const std::string inner = fmt::format("echo {}$$ >&2; exec {} -c \"$1\"", k_pgid_tag, shell);
    return fmt::format(
        "if command -v setsid >/dev/null 2>&1; then exec setsid -w sh -c {0} sh {1}; "
        "else exec sh -c {0} sh {1}; fi",
        shell_quote(inner), shell_quote(command));
}

std::string phase_of(const std::string& command, const ExecOptions& o) {
    if (!o.phase.empty())
        return o.phase;
    const auto first_line = command.substr(0, command.find('\n'));
    return first_line.size() > 60 ? first_line.substr(0, 57) + "..." : first_line;
}

bool connection_level(int rc) {
    return rc != LIBSSH2_ERROR_EAGAIN && rc != LIBSSH2_ERROR_CHANNEL_CLOSED &&
           rc != LIBSSH2_ERROR_CHANNEL_EOF_SENT;
}

std::string format_ms(std::chrono::milliseconds d) {
    if (d.count() % 60'000 == 0)
        return fmt::format("{} min", d.count() / 60'000);
    if (d.count() % 1000 == 0)
        return fmt::format("{} s", d.count() / 1000);
    return fmt::format("{} ms", d.count());
}

} // namespace

std::string Session::Impl::wait_socket(int max_ms) const {
    // Through a jump host the socket is our end of the tunnel: its pump knows why it closed.
    auto gone = [this](std::string why) {
        if (tunnel)
            if (auto f = tunnel->failure(); !f.empty())
                return "through the jump host: " + f;
        return why;
    };
    const int dir = libssh2_session_block_directions(s());
    pollfd p{sock.fd(), POLLIN, 0};
    if (dir & LIBSSH2_SESSION_BLOCK_OUTBOUND)
        p.events |= POLLOUT;
    const int rc = ::poll(&p, 1, max_ms);
    if (rc <= 0)
        return {};
    if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(sock.fd(), SOL_SOCKET, SO_ERROR, &err, &len);
        return gone(err != 0 ? std::strerror(err) : "the peer closed the connection");
    }
    if (p.revents & POLLIN) {
        char c = 0;
        const auto n = ::recv(sock.fd(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0)
            return gone("the peer closed the connection");
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return gone(std::strerror(errno));
        if (n > 0 && dir == 0 && max_ms > 0) {
            // Data waits that libssh2 does not want yet: do not spin on it.
            ::poll(nullptr, 0, std::min(max_ms, 10));
        }
    }
    return {};
}

bool Session::Impl::run_bounded(const std::string& command, std::chrono::milliseconds bound) {
    Impl& impl = *this;
    LIBSSH2_SESSION* ss = s();
    const auto until = Clock::now() + bound;
    libssh2_session_set_blocking(ss, 0);
    LIBSSH2_CHANNEL* ch = nullptr;
    while ((ch = libssh2_channel_open_session(ss)) == nullptr) {
        if (libssh2_session_last_errno(ss) != LIBSSH2_ERROR_EAGAIN || Clock::now() >= until ||
            !impl.wait_socket(100).empty())
            return false;
    }
    ChannelPtr channel(ch);
    int rc = 0;
    while ((rc = libssh2_channel_exec(channel.get(), command.c_str())) == LIBSSH2_ERROR_EAGAIN) {
        if (Clock::now() >= until || !impl.wait_socket(100).empty())
            return false;
    }
    if (rc != 0)
        return false;
    std::array<char, 4096> buf{};
    while (!libssh2_channel_eof(channel.get())) {
        const auto n = libssh2_channel_read(channel.get(), buf.data(), buf.size());
        const auto e = libssh2_channel_read_stderr(channel.get(), buf.data(), buf.size());
        if ((n < 0 && n != LIBSSH2_ERROR_EAGAIN) || (e < 0 && e != LIBSSH2_ERROR_EAGAIN))
            return false;
        if (Clock::now() >= until || !impl.wait_socket(100).empty())
            return false;
    }
    while (libssh2_channel_close(channel.get()) == LIBSSH2_ERROR_EAGAIN && Clock::now() < until)
        impl.wait_socket(100);
    while (libssh2_channel_free(channel.get()) == LIBSSH2_ERROR_EAGAIN) {
        if (Clock::now() >= until)
            break; // the session frees it with itself
        impl.wait_socket(100);
    }
    (void)channel.release();
    return true;
}

/// Ends what a command started on the target: TERM, then KILL after the grace period, on a
/// fresh channel (the command's own channel only closes its pipes; a silent `sleep` would never
/// notice). Where ps and awk exist the members are the group *and every descendant of it*, taken
/// as a snapshot before the TERM: a `sudo` inside the command (Debian's sudoers sets use_pty)
/// puts the real command in a session of its own, outside the group, and a member whose parent
/// dies is re-parented to init, out of the tree. Root-owned members are signalled through
/// `sudo -n` when the user may. Zombies do not count as alive: they stay until init reaps them.
void Session::Impl::end_remote_group(long pgid, bool sudo) {
    Impl& impl = *this;
    if (pgid <= 1)
        return;
    const auto grace_steps = std::chrono::duration_cast<std::chrono::milliseconds>(k_kill_grace) /
                             std::chrono::milliseconds(100);
    // clang-format off
    std::string script = R"sh(G=@G@; N=@N@; S=
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then S="sudo -n"; fi
if command -v ps >/dev/null 2>&1 && command -v awk >/dev/null 2>&1; then
  tree() { ps -e -o pid= -o ppid= -o pgid= -o stat= 2>/dev/null | awk -v g="$G" '
    { pp[$1] = $2; st[$1] = $4; if ($3 == g || $1 == g) m[$1] = 1 }
    END { do { c = 0; for (p in pp) if (!(p in m) && (pp[p] in m)) { m[p] = 1; c = 1 } } while (c)
          for (p in m) if ((p in st) && st[p] !~ /^Z/) printf "%s ", p }'; }
  alive() { ps -e -o pid= -o stat= 2>/dev/null | awk -v l=" $P " '$2 !~ /^Z/ && index(l, " " $1 " ") { f = 1 } END { exit !f }'; }
  P=$(tree); [ -n "$P" ] || exit 0
  $S kill -TERM $P 2>/dev/null
  i=0; while [ $i -lt $N ] && alive; do sleep 0.1; i=$((i+1)); done
  P="$P $(tree)"; $S kill -KILL $P 2>/dev/null; exit 0
fi
kill -TERM -- -$G 2>/dev/null || exit 0
i=0; while [ $i -lt $N ] && kill -0 -- -$G 2>/dev/null; do sleep 0.1; i=$((i+1)); done
kill -KILL -- -$G 2>/dev/null; exit 0
)sh";
    // clang-format on
    const auto put = [&script](std::string_view key, const std::string& value) {
        script.replace(script.find(key), key.size(), value);
    };
    put("@G@", std::to_string(pgid));
    put("@N@", std::to_string(grace_steps));
    // Through sh: the login shell of the target's user may not be POSIX.
    const std::string body = "sh -c " + shell_quote(script);
    const std::string cmd = sudo ? "sudo -n -- " + body : body;
    if (!run_bounded(cmd, k_kill_grace + 8s))
        log::warn("ssh: could not end the remote process group {} on {}", pgid, impl.endpoint.host);
    else
        log::debug("ssh: ended the remote process group {} on {}", pgid, impl.endpoint.host);
}

ExecResult Session::exec(const std::string& command, const ExecOptions& options) {
    Impl& impl = *m_impl;
    LIBSSH2_SESSION* s = impl.s();
    const bool sudo = options.sudo && !is_root();
    const std::string cmd = sudo ? "sudo -n -- sh -c " + shell_quote(wrap_in_group(command, "sh"))
                                 : wrap_in_group(command, "\"${SHELL:-sh}\"");
    const auto phase = phase_of(command, options);
    const auto& host = impl.endpoint.host;
    log::trace("ssh {}: {}", host, command);

    const auto started = Clock::now();
    const bool default_deadline = options.timeout.count() <= 0;
    const auto limit = default_deadline ? impl.exec_timeout : options.timeout;
    // A caller's timeout gets a little slack (a tenth, at most 5 s), so a command that wraps
    // itself in `timeout N` can report 124 first; the default deadline is the limit itself.
    const auto slack = default_deadline ? std::chrono::milliseconds(0)
                                        : std::min<std::chrono::milliseconds>(5s, limit / 10);
    const auto deadline = started + limit + slack;
    // An interrupt that arrived before this exec started is the cleanup's, which must still
    // run.
    const bool interruptible = !signals::interrupted();

    auto lost = [&](const std::string& why) {
        return Error(ExitCode::ssh,
                     fmt::format("ssh: connection to {} lost during '{}': {}",
                                 impl.endpoint.to_string(), phase, why),
                     "is the host up and sshd running? the command may still run there");
    };
    auto failed = [&](const char* what, int rc) {
        if (rc == LIBSSH2_ERROR_TIMEOUT || rc == LIBSSH2_ERROR_SOCKET_TIMEOUT)
            return Error(ExitCode::timeout,
                         fmt::format("ssh: {} on {} timed out during '{}' (libssh2 error {})", what,
                                     impl.endpoint.to_string(), phase, rc));
        return lost(fmt::format("{} failed (libssh2 error {}: {})", what, rc, last_error(s)));
    };

    // Opening the channel and starting the command: non-blocking, within the deadline.
    libssh2_session_set_blocking(s, 0);
    struct Blocking {
        LIBSSH2_SESSION* s;
        ~Blocking() { libssh2_session_set_blocking(s, 1); }
    } restore{s};
    const auto setup_until = std::min(deadline, Clock::now() + impl.io_timeout);
    LIBSSH2_CHANNEL* raw = nullptr;
    while ((raw = libssh2_channel_open_session(s)) == nullptr) {
        const int rc = libssh2_session_last_errno(s);
        if (rc != LIBSSH2_ERROR_EAGAIN)
            throw failed("opening a channel", rc);
        if (Clock::now() >= setup_until)
            throw failed("opening a channel", LIBSSH2_ERROR_TIMEOUT);
        if (const auto why = impl.wait_socket(100); !why.empty())
            throw lost(why);
    }
    ChannelPtr channel(raw);
    for (int rc; (rc = libssh2_channel_exec(channel.get(), cmd.c_str())) != 0;) {
        if (rc != LIBSSH2_ERROR_EAGAIN)
            throw failed("starting the command", rc);
        if (Clock::now() >= setup_until)
            throw failed("starting the command", LIBSSH2_ERROR_TIMEOUT);
        if (const auto why = impl.wait_socket(100); !why.empty())
            throw lost(why);
    }

    ExecResult result;
    std::string_view to_send = options.stdin_data ? std::string_view(*options.stdin_data) : "";
    std::string source_buf;
    bool source_done = !options.stdin_source;
    bool eof_sent = false;
    std::string out_partial, err_partial;
    std::string err_head; // stderr until the PGID line has been seen
    bool pgid_known = false;
    long pgid = 0;
    bool interrupted = false;
    bool given_up = false; // options.cancelled said so
    auto last_keepalive = Clock::now();
    std::array<char, 32768> buf{};
    auto take_stderr = [&](std::string_view chunk) {
        result.err.append(chunk);
        err_partial.append(chunk);
        take_lines(err_partial, options.on_stderr_line);
    };
    // The wrapper's first stderr line is the PGID; it is not the command's output.
    auto take_head = [&](bool at_end) {
        const auto nl = err_head.find('\n');
        if (nl == std::string::npos && !at_end && err_head.size() < 64)
            return;
        pgid_known = true;
        std::string rest = std::move(err_head);
        err_head.clear();
        if (rest.rfind(k_pgid_tag, 0) == 0 && nl != std::string::npos) {
            const auto digits =
                std::string_view(rest).substr(k_pgid_tag.size(), nl - k_pgid_tag.size());
            std::from_chars(digits.data(), digits.data() + digits.size(), pgid);
            rest.erase(0, nl + 1);
        }
        if (!rest.empty())
            take_stderr(rest);
    };

    while (true) {
        bool progressed = false;
        if (!eof_sent) {
            if (to_send.empty() && !source_done) {
                source_buf.resize(256 * 1024);
                const auto n = options.stdin_source(source_buf.data(), source_buf.size());
                if (n == 0)
                    source_done = true;
                else
                    to_send = std::string_view(source_buf.data(), n);
            }
            if (!to_send.empty()) {
                const auto w = libssh2_channel_write(channel.get(), to_send.data(), to_send.size());
                if (w > 0) {
                    to_send.remove_prefix(static_cast<std::size_t>(w));
                    progressed = true;
                } else if (w < 0 && connection_level(static_cast<int>(w))) {
                    throw failed("sending stdin", static_cast<int>(w));
                } else if (w < 0 && w != LIBSSH2_ERROR_EAGAIN) {
                    // The remote side stopped reading (the command ended): stop feeding it.
                    to_send = {};
                    source_done = true;
                }
            }
            if (to_send.empty() && source_done) {
                const int rc = libssh2_channel_send_eof(channel.get());
                if (rc < 0 && connection_level(rc))
                    throw failed("sending end of stdin", rc);
                if (rc != LIBSSH2_ERROR_EAGAIN)
                    eof_sent = true;
            }
        }
        for (int stream : {0, SSH_EXTENDED_DATA_STDERR}) {
            while (true) {
                const auto n =
                    libssh2_channel_read_ex(channel.get(), stream, buf.data(), buf.size());
                if (n < 0 && n != LIBSSH2_ERROR_EAGAIN)
                    throw failed("reading output", static_cast<int>(n));
                if (n <= 0)
                    break;
                progressed = true;
                std::string_view chunk(buf.data(), static_cast<std::size_t>(n));
                if (stream == 0) {
                    result.out.append(chunk);
                    out_partial.append(chunk);
                    take_lines(out_partial, options.on_stdout_line);
                } else if (!pgid_known) {
                    err_head.append(chunk);
                    take_head(false);
                } else {
                    take_stderr(chunk);
                }
            }
        }
        if (libssh2_channel_eof(channel.get()))
            break;
        if (Clock::now() >= deadline) {
            result.timed_out = true;
            break;
        }
        if (interruptible && signals::interrupted()) {
            interrupted = true;
            break;
        }
        if (options.cancelled && options.cancelled()) {
            given_up = true;
            break;
        }
        if (Clock::now() - last_keepalive > 5s) {
            int next = 0;
            const int rc = libssh2_keepalive_send(s, &next);
            if (rc < 0 && rc != LIBSSH2_ERROR_EAGAIN)
                throw failed("sending a keepalive", rc);
            last_keepalive = Clock::now();
        }
        if (!progressed)
            if (const auto why = impl.wait_socket(100); !why.empty())
                throw lost(why);
    }
    // Stopped before the wrapper reported its PGID (a cancel right after the start): give it a
    // moment, or the group could not be ended.
    const auto head_until = Clock::now() + 2s;
    while (!pgid_known && (result.timed_out || interrupted || given_up) &&
           Clock::now() < head_until && !libssh2_channel_eof(channel.get())) {
        const auto n = libssh2_channel_read_ex(channel.get(), SSH_EXTENDED_DATA_STDERR, buf.data(),
                                               buf.size());
        if (n > 0) {
            err_head.append(buf.data(), static_cast<std::size_t>(n));
            take_head(false);
        } else if (n < 0 && n != LIBSSH2_ERROR_EAGAIN) {
            break;
        } else if (!impl.wait_socket(100).empty()) {
            break;
        }
    }
    if (!pgid_known)
        take_head(true);
    take_lines(out_partial, options.on_stdout_line, true);
    take_lines(err_partial, options.on_stderr_line, true);

    const bool cancelled = result.timed_out || interrupted || given_up;
    if (cancelled) {
        log::debug("ssh: '{}' on {} {}; ending its process group {}", phase, host,
                   interrupted ? "interrupted"
                   : given_up  ? "cancelled"
                               : "timed out",
                   pgid);
        impl.end_remote_group(pgid, sudo);
    }

    // Close and collect the exit status; bounded so a dead peer cannot hang us.
    const auto close_deadline = Clock::now() + (cancelled ? 1s : 5s);
    while (libssh2_channel_close(channel.get()) == LIBSSH2_ERROR_EAGAIN &&
           Clock::now() < close_deadline)
        impl.wait_socket(100);
    if (!cancelled) {
        while (libssh2_channel_wait_closed(channel.get()) == LIBSSH2_ERROR_EAGAIN &&
               Clock::now() < close_deadline)
            impl.wait_socket(100);
        result.exit_status = libssh2_channel_get_exit_status(channel.get());
        char* sig = nullptr;
        std::size_t sig_len = 0;
        if (libssh2_channel_get_exit_signal(channel.get(), &sig, &sig_len, nullptr, nullptr,
                                            nullptr, nullptr) == 0 &&
            sig != nullptr) {
            result.exit_signal.assign(sig, sig_len);
            libssh2_free(s, sig);
        }
        if (!default_deadline && result.exit_status == 124 &&
            Clock::now() - started >= options.timeout)
            result.timed_out = true;
    }
    // Free while still non-blocking: a peer that never confirms the close must not hang us.
    while (libssh2_channel_free(channel.get()) == LIBSSH2_ERROR_EAGAIN) {
        if (Clock::now() >= close_deadline) {
            log::debug("ssh: channel on {} not closed by the peer; abandoning it", host);
            break; // the session frees it with itself
        }
        impl.wait_socket(100);
    }
    (void)channel.release();
    if (interrupted)
        throw Interrupted();
    if (given_up)
        throw Error(ExitCode::interrupted,
                    fmt::format("ssh: '{}' on {} cancelled; its remote process group was ended",
                                phase, impl.endpoint.to_string()));
    if (result.timed_out && default_deadline)
        throw Error(ExitCode::timeout,
                    fmt::format("ssh: '{}' on {} did not finish within the default deadline of "
                                "{}; its remote process group was ended",
                                phase, impl.endpoint.to_string(), format_ms(limit)),
                    "give the step its own timeout if it needs longer");
    return result;
}

} // namespace labctl::remote
