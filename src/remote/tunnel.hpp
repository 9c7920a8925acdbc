#pragma once
// Private to src/remote: a byte stream to a host that only an SSH jump host can reach. The jump
// is an ordinary Session (its key pinned in the same known_hosts, never trusted on first use);
// a direct-tcpip channel of it is pumped by a thread to one end of a socketpair, and the other
// end is the socket the caller runs its own SSH session over, exactly as over TCP. One tunnel
// per session: libssh2 sessions are not shared between threads, so the pump owns the jump's.
// The pump is a Link (pump.hpp), shared with the port forwards of forward.cpp.

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <labctl/remote/session.hpp>

#include "pump.hpp"
#include "session_impl.hpp"

namespace labctl::remote::detail {

/// Connects to options.jump (its key pinned in options.known_hosts, its own key or agent, the
/// timeouts of `options`). Errors start with "jump host: "; an unpinned key's hint says how to pin
/// it.
Session connect_jump(const ConnectOptions& options);

/// Why the jump host `via` opened no direct-tcpip channel to `target` (libssh2's error of `s`):
/// ConnectError(timeout) when it did not answer within `io_timeout`, else ConnectError(ssh)
/// naming the target and the jump's AllowTcpForwarding (OpenSSH answers a refused connection
/// and a forbidden forward alike).
ConnectError channel_open_error(LIBSSH2_SESSION* s, const std::string& via, const Endpoint& target,
                                std::chrono::milliseconds io_timeout);

class Tunnel {
public:
    /// Connects to options.jump (its key pinned in options.known_hosts; its own key or agent),
    /// opens a direct-tcpip channel to options.endpoint and starts the pump; `local_end` gets the
    /// socket to run the target's SSH session over. ConnectError when the jump host cannot be
    /// reached or cannot reach the target yet (the guest may be booting: callers retry), Error
    /// for what retrying cannot fix (host key, authentication, a jump that forbids forwarding).
    static std::unique_ptr<Tunnel> open(const ConnectOptions& options, Socket& local_end);

    Tunnel(const Tunnel&) = delete;
    Tunnel& operator=(const Tunnel&) = delete;
    /// Stops the pump (at most one poll interval) and closes the channel and the jump session
    /// (each goodbye within 2 s).
    ~Tunnel();

    /// Why the pump stopped early ("the jump host closed the connection"), or "" while it runs.
    std::string failure() const;

private:
    Tunnel(Session jump, ChannelPtr channel, Socket far_end);
    void pump() noexcept;
    void fail(std::string why) noexcept;

    Session m_jump;
    Link m_link; // after m_jump: its channel is freed before the session
    std::atomic<bool> m_stop{false};
    mutable std::mutex m_mutex;
    std::string m_failure;
    std::thread m_thread;
};

} // namespace labctl::remote::detail
