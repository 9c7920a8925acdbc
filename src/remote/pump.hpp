#pragma once
// Private to src/remote: moving bytes between a local socket and an SSH channel without blocking.
// The jump tunnel (one channel, one end of a socketpair) and port forwards (several channels of
// one session, accepted TCP connections) share it.
//
// libssh2 1.10 keeps at most one outgoing packet half-sent per session: once a call that may send
// (a channel write, the window adjust inside a read, an EOF, a close) returned EAGAIN, its packet
// is already encrypted and queued, and any *other* packet is refused with LIBSSH2_ERROR_BAD_USE
// until that same call is repeated (transport.c, send_existing). A SendGate records which call
// left a packet behind; while one did, nothing but that call runs on the session.

#include <libssh2.h>

#include <string>

#include "session_impl.hpp"

namespace labctl::remote::detail {

/// How long a pump waits in poll(): the longest a stop request or a keepalive waits.
inline constexpr int k_pump_poll_ms = 100;

class SendGate;

/// Something that owns a libssh2 call which may have to be repeated (see SendGate).
class GateUser {
public:
    virtual ~GateUser() = default;
    /// Repeats the call that left a packet half-sent.
    virtual void retry(SendGate& gate) = 0;
};

class SendGate {
public:
    explicit SendGate(LIBSSH2_SESSION* s) : m_s(s) {}
    /// True while no call has a packet half-sent: any libssh2 call may run.
    bool idle() const { return m_owner == nullptr; }
    GateUser* owner() const { return m_owner; }
    /// Records the result of `user`'s call `op`: a packet left behind makes `user` the owner, a
    /// call that got through (or failed) releases it.
    void after(GateUser* user, int op, long rc);
    /// The call `user` must repeat (meaningful while it owns the gate).
    int op() const { return m_op; }
    /// Sends a keepalive when one is due, but only when nothing is pending and the socket takes
    /// data now: libssh2_keepalive_send swallows its own EAGAIN and would leave a packet behind
    /// that no later call can complete.
    void keepalive(int session_fd);

private:
    LIBSSH2_SESSION* m_s;
    GateUser* m_owner = nullptr;
    int m_op = 0;
};

/// One local socket (non-blocking, connected) joined to one open channel, both directions,
/// half-closes passed on (EOF from the channel shuts the socket's write side; EOF from the socket
/// sends the channel's EOF). Buffers at most k_max_pending bytes per direction (back-pressure).
class Link : public GateUser {
public:
    /// `session_fd` is the socket the session runs over.
    Link(LIBSSH2_SESSION* s, int session_fd, ChannelPtr channel, Socket local);

    /// Moves what can move now. libssh2 is called only while `gate` is idle.
    void step(SendGate& gate);
    void retry(SendGate& gate) override;

    /// Both directions finished, or the link failed.
    bool done() const { return m_failed || (m_shut_local && m_sent_eof); }
    bool failed() const { return m_failed; }
    /// Why it failed: "reading from the jump host: ...", "the local side reset the connection".
    const std::string& error() const { return m_error; }
    /// The libssh2 code of a failure on the channel; 0 when the local socket failed.
    int error_code() const { return m_code; }

    int local_fd() const { return m_local.fd(); }
    /// poll() events for the local socket.
    short local_events() const;
    /// Whether this link reads from the session (so its socket is worth polling for input).
    bool wants_channel_input() const;
    /// Whether the channel's EOF is due but waits for the session socket to take data.
    bool eof_due() const { return !done() && m_local_eof && m_to_remote.empty() && !m_sent_eof; }
    /// Whether libssh2 already holds input for this link that step() has not taken yet (poll
    /// must not sleep then: the session socket will not wake it).
    bool has_queued_input() const;

    /// Hands the channel over (to be closed); the link must not be stepped afterwards.
    ChannelPtr take_channel() { return std::move(m_channel); }
    bool has_channel() const { return m_channel != nullptr; }
    /// Closes the local socket: with `reset`, as a TCP reset (SO_LINGER 0) where it is one.
    void close_local(bool reset);

private:
    enum Op { op_read = 1, op_write, op_eof };
    void do_read(SendGate& gate);
    void do_write(SendGate& gate);
    void do_eof(SendGate& gate);
    void local_io();
    void fail(int code, std::string why);

    LIBSSH2_SESSION* m_s;
    int m_session_fd;
    ChannelPtr m_channel;
    Socket m_local;
    std::string m_to_local;  // from the channel, not yet written to the local socket
    std::string m_to_remote; // from the local socket, not yet written to the channel
    bool m_remote_eof = false, m_local_eof = false, m_sent_eof = false, m_shut_local = false;
    bool m_failed = false;
    int m_code = 0;
    std::string m_error;
};

/// True when the socket takes data now: a packet as small as an EOF, a close or a keepalive then
/// goes out whole, so the call that sends it cannot leave it half-sent (see SendGate).
bool writable_now(int fd);

/// Closes `s` (no-op when it is closed): with `reset`, as a TCP reset (SO_LINGER 0), so the peer
/// learns at once that nothing answers any more.
void close_socket(Socket& s, bool reset);

/// Why the session's socket is gone ("the jump host closed the connection"), or "" while it is
/// up: asked after poll() reported `revents` for it. libssh2 1.10 reads a closed transport as
/// "no data", so the socket itself is asked.
std::string session_socket_lost(int fd, short revents);

/// True for libssh2 codes that concern one channel only; anything else broke the session.
bool channel_only_error(int code);

} // namespace labctl::remote::detail
