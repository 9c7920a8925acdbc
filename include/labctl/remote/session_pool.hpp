#pragma once
// SSH connections kept between the steps and stages of one labctl process. Under TCG a new
// connection costs 1.5-2 s (the key exchange runs on the emulated guest), and `up` used to open
// one per stage to the same VM; now provision's wait hands its connection on, and harden, deploy
// and verify lease it in turn. A session is leased to one caller at a time, goes back when the
// lease ends normally, and is dropped when the lease ends by an exception (its state is in
// doubt) or its connection has gone. Connections that prove something about a new sshd
// configuration (harden's fresh logins, verify's probe) never come from here.

#include <chrono>
#include <optional>
#include <string>

#include <labctl/remote/session.hpp>

namespace labctl::remote {

/// A session lent by the pool: use it like a Session; it goes back to the pool when the lease
/// ends, unless an exception is unwinding or discard() was called.
class SessionLease {
public:
    SessionLease(std::string key, Session session);
    SessionLease(SessionLease&&) noexcept;
    SessionLease& operator=(SessionLease&&) = delete;
    SessionLease(const SessionLease&) = delete;
    ~SessionLease();

    Session& operator*() { return *m_session; }
    Session* operator->() { return &*m_session; }
    /// Closes the connection instead of keeping it (the host is about to change under it).
    void discard();

private:
    std::string m_key;
    std::optional<Session> m_session;
    int m_uncaught;
};

/// A kept session for these options when one is idle and its connection is still there; else a
/// new connection, retried like wait_for_session for up to `wait`.
SessionLease lease_session(const ConnectOptions& options, std::chrono::milliseconds wait);

/// Hands a connected session to the pool (provision's wait, after it proved the guest up).
void keep_session(const ConnectOptions& options, Session session);

/// Closes every kept session: at the end of the process, before libssh2 goes away.
void close_sessions();

/// How many connections lease_session made and how many it lent again (the tests count them).
struct PoolCounters {
    int connected = 0;
    int reused = 0;
};
PoolCounters pool_counters();

} // namespace labctl::remote
