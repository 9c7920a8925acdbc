#pragma once
// Private to src/remote: the libssh2 handles and the Session's state, shared by the connect
// (session.cpp), exec (session_exec.cpp) and SFTP (session_sftp.cpp) halves.

#include <libssh2.h>
#include <libssh2_sftp.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include <labctl/remote/session.hpp>

namespace labctl::remote::detail {

using Clock = std::chrono::steady_clock;

struct SessionDeleter {
    void operator()(LIBSSH2_SESSION* s) const {
        libssh2_session_disconnect(s, "labctl done");
        libssh2_session_free(s);
    }
};
struct ChannelDeleter {
    void operator()(LIBSSH2_CHANNEL* c) const { libssh2_channel_free(c); }
};
struct SftpDeleter {
    void operator()(LIBSSH2_SFTP* s) const { libssh2_sftp_shutdown(s); }
};
struct SftpHandleDeleter {
    void operator()(LIBSSH2_SFTP_HANDLE* h) const { libssh2_sftp_close_handle(h); }
};
struct KnownHostsDeleter {
    void operator()(LIBSSH2_KNOWNHOSTS* k) const { libssh2_knownhost_free(k); }
};
struct AgentDeleter {
    void operator()(LIBSSH2_AGENT* a) const {
        libssh2_agent_disconnect(a);
        libssh2_agent_free(a);
    }
};
using SessionPtr = std::unique_ptr<LIBSSH2_SESSION, SessionDeleter>;
using ChannelPtr = std::unique_ptr<LIBSSH2_CHANNEL, ChannelDeleter>;
using SftpPtr = std::unique_ptr<LIBSSH2_SFTP, SftpDeleter>;
using SftpHandlePtr = std::unique_ptr<LIBSSH2_SFTP_HANDLE, SftpHandleDeleter>;
using KnownHostsPtr = std::unique_ptr<LIBSSH2_KNOWNHOSTS, KnownHostsDeleter>;
using AgentPtr = std::unique_ptr<LIBSSH2_AGENT, AgentDeleter>;

class Socket {
public:
    Socket() = default;
    explicit Socket(int fd) : m_fd(fd) {}
    Socket(Socket&& o) noexcept : m_fd(std::exchange(o.m_fd, -1)) {}
    Socket& operator=(Socket&& o) noexcept {
        std::swap(m_fd, o.m_fd);
        return *this;
    }
    ~Socket() {
        if (m_fd >= 0)
            ::close(m_fd);
    }
    int fd() const { return m_fd; }

private:
    int m_fd = -1;
};

class Tunnel;

inline std::string last_error(LIBSSH2_SESSION* s) {
    char* msg = nullptr;
    int len = 0;
    libssh2_session_last_error(s, &msg, &len, 0);
    return msg != nullptr && len > 0 ? std::string(msg, static_cast<std::size_t>(len))
                                     : std::string("unknown libssh2 error");
}

} // namespace labctl::remote::detail

namespace labctl::remote {

struct Session::Impl {
    /// Set when the session runs through a jump host; declared first, so it outlives the
    /// session's goodbye written through it.
    std::unique_ptr<detail::Tunnel> tunnel;
    detail::Socket sock;
    detail::SessionPtr session;
    Endpoint endpoint;
    ServerFacts facts;
    std::chrono::milliseconds io_timeout{30'000};
    std::chrono::milliseconds exec_timeout{30 * 60'000};

    Impl();
    ~Impl(); // out of line: Tunnel is complete only in session.cpp
    LIBSSH2_SESSION* s() const { return session.get(); }

    /// Waits up to `max_ms` for the socket in the direction libssh2 is blocked on (non-blocking
    /// mode). Returns an empty string, or why the connection is gone: the peer closed or reset
    /// it. libssh2 1.10's channel reads report a dead transport as "0 bytes", not as an error,
    /// so the socket itself is asked.
    std::string wait_socket(int max_ms) const;

    /// Runs `command` on a channel of its own within `bound`, output discarded (no group
    /// wrapper): for ending a remote process group. False when it could not be run in time.
    bool run_bounded(const std::string& command, std::chrono::milliseconds bound);
    /// TERM to the remote process group `pgid`, KILL after a grace period.
    void end_remote_group(long pgid, bool sudo);
};

} // namespace labctl::remote

namespace labctl::remote::detail {

/// What the pumps of the jump tunnel and the port forwards need of a connected Session: its
/// libssh2 handle and socket, used from the one thread that owns the session.
struct SessionAccess {
    static LIBSSH2_SESSION* raw(Session& s) { return s.m_impl->s(); }
    static int fd(Session& s) { return s.m_impl->sock.fd(); }
};

} // namespace labctl::remote::detail
