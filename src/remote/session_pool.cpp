#include <fmt/format.h>

#include <exception>
#include <map>
#include <mutex>

#include <labctl/core/log.hpp>
#include <labctl/remote/session_pool.hpp>

namespace labctl::remote {

namespace {

/// Everything that makes two connections the same login: where, as whom, with which key, through
/// which jump host, trusting which known_hosts. Timeouts are per lease, not part of the login.
std::string key_of(const ConnectOptions& o) {
    std::string key = fmt::format("{}|{}|{}|{}", o.endpoint.to_string(), o.known_hosts,
                                  o.private_key, o.use_agent);
    if (o.jump)
        key += fmt::format("|via {}|{}|{}", o.jump->endpoint.to_string(), o.jump->private_key,
                           o.jump->use_agent);
    return key;
}

struct Pool {
    std::mutex mutex;
    std::multimap<std::string, Session> idle;
    PoolCounters counters;
};

Pool& pool() {
    // Never destroyed: sessions still kept at exit (close_sessions() was not reached) must not be
    // torn down after libssh2 itself; the kernel closes their sockets.
    static Pool* const p = new Pool;
    return *p;
}

std::optional<Session> take_idle(const std::string& key) {
    auto& p = pool();
    std::lock_guard lock(p.mutex);
    while (true) {
        const auto it = p.idle.find(key);
        if (it == p.idle.end())
            return std::nullopt;
        Session s = std::move(it->second);
        p.idle.erase(it);
        if (const auto why = s.gone(); !why.empty()) {
            log::debug("ssh: not reusing the connection to {}: {}", s.endpoint().to_string(), why);
            continue; // closed outside the lock would be nicer; closing a dead socket is quick
        }
        ++p.counters.reused;
        return s;
    }
}

void put(const std::string& key, Session session) {
    auto& p = pool();
    std::lock_guard lock(p.mutex);
    p.idle.emplace(key, std::move(session));
}

} // namespace

SessionLease::SessionLease(std::string key, Session session)
    : m_key(std::move(key)), m_session(std::move(session)), m_uncaught(std::uncaught_exceptions()) {
}

SessionLease::SessionLease(SessionLease&& other) noexcept
    : m_key(std::move(other.m_key)), m_session(std::move(other.m_session)),
      m_uncaught(other.m_uncaught) {
    other.m_session.reset();
}

SessionLease::~SessionLease() {
    if (!m_session)
        return;
    // Ended by an exception: an exec may have been cut off mid-stream; never lend that again.
    if (std::uncaught_exceptions() > m_uncaught)
        return;
    try {
        put(m_key, std::move(*m_session));
    } catch (...) {
        // Out of memory while keeping it: the connection is simply closed.
    }
}

void SessionLease::discard() {
    m_session.reset();
}

SessionLease lease_session(const ConnectOptions& options, std::chrono::milliseconds wait) {
    const auto key = key_of(options);
    if (auto kept = take_idle(key)) {
        kept->set_timeouts(options.io_timeout, options.exec_timeout);
        log::debug("ssh: reusing the connection to {}", options.endpoint.to_string());
        return {key, std::move(*kept)};
    }
    auto session = wait_for_session(options, wait);
    {
        auto& p = pool();
        std::lock_guard lock(p.mutex);
        ++p.counters.connected;
    }
    return {key, std::move(session)};
}

void keep_session(const ConnectOptions& options, Session session) {
    put(key_of(options), std::move(session));
}

void close_sessions() {
    std::multimap<std::string, Session> closing;
    auto& p = pool();
    {
        std::lock_guard lock(p.mutex);
        closing.swap(p.idle);
    }
}

PoolCounters pool_counters() {
    auto& p = pool();
    std::lock_guard lock(p.mutex);
    return p.counters;
}

} // namespace labctl::remote
