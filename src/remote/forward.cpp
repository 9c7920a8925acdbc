// A local port forward through the jump host (forward.hpp). One jump session and one thread per
// forward: libssh2 sessions belong to one thread, and a session per connection would cost an SSH
// login per HTTP request and could not be stopped within a poll interval while it logs in. The
// thread multiplexes the channels of that session through pump.hpp's Link and SendGate, which
// keep libssh2's one-half-sent-packet rule; channel opens go one at a time (libssh2 keeps one
// open in progress per session).

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <labctl/core/log.hpp>
#include <labctl/remote/forward.hpp>

#include "pump.hpp"
#include "session_impl.hpp"
#include "tunnel.hpp"

namespace labctl::remote {

using namespace detail;

namespace {

/// Connections served at once (open, waiting for their channel); more are reset.
constexpr std::size_t k_max_connections = 64;
/// How long the goodbye of the channels and the session may take when the forward ends.
constexpr std::chrono::milliseconds k_goodbye{2000};

void reset(Socket& s) {
    close_socket(s, true);
}

struct Client {
    Socket sock;
    int port = 0; ///< its source port, named to the jump host as the channel's originator
};

/// A channel being closed and freed (non-blocking: it waits for the jump host's answer).
class Closing : public GateUser {
public:
    explicit Closing(ChannelPtr channel) : m_channel(std::move(channel)) {}
    void retry(SendGate& gate) override { attempt(gate); }
    void attempt(SendGate& gate) {
        const int rc = libssh2_channel_free(m_channel.get());
        gate.after(this, 1, rc);
        if (rc != LIBSSH2_ERROR_EAGAIN)
            (void)m_channel.release(); // freed, whatever it answered
    }
    bool done() const { return !m_channel; }

private:
    ChannelPtr m_channel;
};

/// What the forward's thread and its owner share.
struct State {
    Session jump;
    Socket listener;
    int port = 0;
    Endpoint target;
    std::string via;
    std::chrono::milliseconds io_timeout{30'000};
    std::atomic<bool> stop{false};
    mutable std::mutex mutex;
    std::string failure;
    std::thread thread;

    explicit State(Session s) : jump(std::move(s)) {}
    void serve() noexcept;
};

/// The serving loop's state; lives on the forward's thread only.
class Server : public GateUser {
public:
    explicit Server(State& f)
        : m_f(f), m_s(SessionAccess::raw(f.jump)), m_jfd(SessionAccess::fd(f.jump)), m_gate(m_s) {}

    void run(const std::atomic<bool>& stop);
    void goodbye();
    const std::string& lost() const { return m_lost; }

    /// The channel open under way (the gate's retry of it).
    void retry(SendGate&) override { attempt_open(); }

private:
    void accept_all();
    void attempt_open();
    void step_links();
    void lose(std::string why);
    void poll_once(int wait_ms);

    State& m_f;
    LIBSSH2_SESSION* m_s;
    int m_jfd;
    SendGate m_gate;
    std::deque<Client> m_waiting;
    std::optional<Client> m_opening;
    std::chrono::steady_clock::time_point m_open_deadline;
    std::vector<std::unique_ptr<Link>> m_links;
    std::vector<std::unique_ptr<Closing>> m_closing;
    std::string m_lost;
};

void Server::lose(std::string why) {
    if (!m_lost.empty())
        return;
    log::debug("ssh: the forward to {}:{} through {} stopped: {}", m_f.target.host, m_f.target.port,
               m_f.via, why);
    m_lost = std::move(why);
    {
        std::lock_guard lock(m_f.mutex);
        m_f.failure = m_lost;
    }
    // The session is not used again: every connection learns it at once.
    for (auto& c : m_waiting)
        reset(c.sock);
    m_waiting.clear();
    if (m_opening)
        reset(m_opening->sock);
    for (auto& l : m_links)
        l->close_local(true);
}

void Server::accept_all() {
    while (true) {
        sockaddr_in from{};
        socklen_t len = sizeof from;
        Socket c(::accept4(m_f.listener.fd(), reinterpret_cast<sockaddr*>(&from), &len,
                           SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (c.fd() < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                log::debug("ssh: forward to {}:{}: accept: {}", m_f.target.host, m_f.target.port,
                           std::strerror(errno));
            return;
        }
        if (!m_lost.empty() || m_links.size() + m_waiting.size() >= k_max_connections) {
            reset(c);
            continue;
        }
        m_waiting.push_back({std::move(c), ntohs(from.sin_port)});
    }
}

void Server::attempt_open() {
    LIBSSH2_CHANNEL* ch = libssh2_channel_direct_tcpip_ex(
        m_s, m_f.target.host.c_str(), m_f.target.port, "127.0.0.1", m_opening->port);
    const int rc = ch != nullptr ? 0 : libssh2_session_last_errno(m_s);
    m_gate.after(this, 1, rc);
    if (ch != nullptr) {
        m_links.push_back(
            std::make_unique<Link>(m_s, m_jfd, ChannelPtr(ch), std::move(m_opening->sock)));
        m_opening.reset();
        return;
    }
    if (rc == LIBSSH2_ERROR_EAGAIN) {
        // libssh2 cannot abandon an open under way: a jump host that does not answer ends the
        // forward rather than leave every later connection waiting behind it.
        if (std::chrono::steady_clock::now() >= m_open_deadline)
            lose(fmt::format("the jump host did not open a connection to {}:{} within {} ms",
                             m_f.target.host, m_f.target.port, m_f.io_timeout.count()));
        return;
    }
    const auto e = channel_open_error(m_s, m_f.via, m_f.target, m_f.io_timeout);
    if (!channel_only_error(rc))
        return lose(e.what());
    // The target refused, or the jump does not forward: only this connection fails.
    log::debug("{}", e.what());
    reset(m_opening->sock);
    m_opening.reset();
}

void Server::step_links() {
    for (auto& l : m_links)
        l->step(m_gate);
    for (auto it = m_links.begin(); it != m_links.end();) {
        Link& l = **it;
        // A link that still owns the gate must repeat its call before its channel can go.
        if (!l.done() || m_gate.owner() == &l) {
            ++it;
            continue;
        }
        if (l.failed()) {
            log::debug("ssh: a connection forwarded to {}:{} failed: {}", m_f.target.host,
                       m_f.target.port, l.error());
            if (l.error_code() != 0 && !channel_only_error(l.error_code()))
                lose(l.error());
        }
        l.close_local(l.failed());
        m_closing.push_back(std::make_unique<Closing>(l.take_channel()));
        it = m_links.erase(it);
    }
}

void Server::poll_once(int wait_ms) {
    std::vector<pollfd> fds;
    fds.push_back({m_f.listener.fd(), POLLIN, 0});
    // A lost session's socket is not polled at all (a reset one would report POLLHUP forever).
    pollfd j{-1, 0, 0};
    if (m_lost.empty() && !m_gate.idle()) {
        j = {m_jfd, POLLOUT, 0}; // only the half-sent packet may move: nothing is read meanwhile
    } else if (m_lost.empty()) {
        j.fd = m_jfd;
        bool want_in = m_opening.has_value() || !m_closing.empty();
        bool want_out = !m_closing.empty();
        for (const auto& l : m_links) {
            want_in = want_in || l->wants_channel_input();
            want_out = want_out || l->eof_due();
            if (l->has_queued_input())
                wait_ms = 0;
        }
        if (want_in)
            j.events |= POLLIN;
        if ((libssh2_session_block_directions(m_s) & LIBSSH2_SESSION_BLOCK_OUTBOUND) != 0 ||
            (want_out && !writable_now(m_jfd)))
            j.events |= POLLOUT;
    }
    fds.push_back(j);
    for (const auto& l : m_links)
        if (l->local_fd() >= 0)
            fds.push_back({l->local_fd(), l->local_events(), 0});
    if (::poll(fds.data(), fds.size(), wait_ms) < 0 && errno != EINTR)
        return lose(fmt::format("poll: {}", std::strerror(errno)));
    if (m_lost.empty())
        if (auto why = session_socket_lost(m_jfd, fds[1].revents); !why.empty())
            lose(std::move(why));
}

void Server::run(const std::atomic<bool>& stop) {
    while (!stop) {
        accept_all();
        if (m_lost.empty()) {
            if (GateUser* owner = m_gate.owner())
                owner->retry(m_gate);
            if (m_lost.empty() && !m_opening && !m_waiting.empty() && m_gate.idle()) {
                m_opening = std::move(m_waiting.front());
                m_waiting.pop_front();
                m_open_deadline = std::chrono::steady_clock::now() + m_f.io_timeout;
            }
            if (m_lost.empty() && m_opening && m_gate.idle())
                attempt_open();
        }
        if (m_lost.empty())
            step_links();
        if (m_lost.empty()) {
            for (auto& c : m_closing)
                if (m_gate.idle() && writable_now(m_jfd))
                    c->attempt(m_gate);
            std::erase_if(m_closing, [](const auto& c) { return c->done(); });
            m_gate.keepalive(m_jfd);
        } else {
            // Links reset by lose() end here; their channels go with the session.
            for (auto& l : m_links)
                m_closing.push_back(std::make_unique<Closing>(l->take_channel()));
            m_links.clear();
        }
        poll_once(k_pump_poll_ms);
    }
}

void Server::goodbye() {
    const auto until = std::chrono::steady_clock::now() + k_goodbye;
    const auto left = [&] {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now());
    };
    for (auto& c : m_waiting)
        reset(c.sock);
    m_waiting.clear();
    if (m_opening)
        reset(m_opening->sock); // its open completes below or is cut off with the session
    for (auto& l : m_links)
        l->close_local(!l->done());
    // Close every channel politely while the jump host answers and time is left.
    bool cut = !m_lost.empty();
    while (!cut && left().count() > 0) {
        if (GateUser* owner = m_gate.owner())
            owner->retry(m_gate);
        if (m_gate.idle()) {
            for (auto& l : m_links) {
                l->close_local(true); // one an open just completed for
                if (l->has_channel())
                    m_closing.push_back(std::make_unique<Closing>(l->take_channel()));
            }
            m_links.clear();
        }
        for (auto& c : m_closing)
            if (m_gate.idle() && writable_now(m_jfd))
                c->attempt(m_gate);
        std::erase_if(m_closing, [](const auto& c) { return c->done(); });
        if (m_closing.empty() && m_links.empty() && m_gate.idle())
            break;
        pollfd j{m_jfd, POLLIN, 0};
        if ((libssh2_session_block_directions(m_s) & LIBSSH2_SESSION_BLOCK_OUTBOUND) != 0 ||
            (!m_closing.empty() && !writable_now(m_jfd)))
            j.events |= POLLOUT;
        ::poll(&j, 1, static_cast<int>(std::clamp<long long>(left().count(), 0, k_pump_poll_ms)));
        cut = !session_socket_lost(m_jfd, j.revents).empty();
    }
    if (cut || !m_closing.empty() || !m_links.empty() || !m_gate.idle() || left().count() <= 0) {
        // Nothing more to say, or no time left to say it: with the socket shut, every libssh2
        // call below fails at once instead of waiting for the jump host.
        ::shutdown(m_jfd, SHUT_RDWR);
    }
    libssh2_session_set_blocking(m_s, 1);
    libssh2_session_set_timeout(m_s, std::max<long>(static_cast<long>(left().count()), 1));
    m_links.clear(); // their channels, and those below, are freed here
    m_closing.clear();
    m_opening.reset();
}

void State::serve() noexcept {
    libssh2_session_set_blocking(SessionAccess::raw(jump), 0);
    Server server(*this);
    try {
        server.run(stop);
    } catch (...) {
        std::lock_guard lock(mutex);
        failure = "the forward's pump failed";
    }
    try {
        server.goodbye();
    } catch (...) {
        ::shutdown(SessionAccess::fd(jump), SHUT_RDWR);
    }
}

} // namespace

struct Forward::Impl : State {
    using State::State;
};

std::unique_ptr<Forward> Forward::open(const ConnectOptions& options) {
    if (!options.jump)
        throw Error(ExitCode::internal, "a port forward needs a jump host");
    auto impl = std::make_unique<Impl>(connect_jump(options));
    impl->target = options.endpoint;
    impl->via = impl->jump.endpoint().to_string();
    impl->io_timeout = options.io_timeout;
    impl->listener = Socket(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (impl->listener.fd() < 0)
        throw Error(ExitCode::internal, fmt::format("socket: {}", std::strerror(errno)));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (::bind(impl->listener.fd(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(impl->listener.fd(), static_cast<int>(k_max_connections)) != 0 ||
        ::getsockname(impl->listener.fd(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
        throw Error(ExitCode::internal,
                    fmt::format("listening on 127.0.0.1 for the forward to {}:{}: {}",
                                options.endpoint.host, options.endpoint.port,
                                std::strerror(errno)));
    impl->port = ntohs(addr.sin_port);
    log::debug("ssh: 127.0.0.1:{} forwards to {}:{} through jump host {}", impl->port,
               impl->target.host, impl->target.port, impl->via);
    Impl* raw = impl.get();
    impl->thread = std::thread([raw] { raw->serve(); });
    return std::unique_ptr<Forward>(new Forward(std::move(impl)));
}

Forward::Forward(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}

Forward::~Forward() {
    m_impl->stop = true;
    if (m_impl->thread.joinable())
        m_impl->thread.join();
    // The thread left the session blocking with what remained of the goodbye time (or its
    // socket shut): the session's own goodbye below cannot wait longer.
}

int Forward::local_port() const {
    return m_impl->port;
}
const Endpoint& Forward::target() const {
    return m_impl->target;
}
const std::string& Forward::via() const {
    return m_impl->via;
}
std::string Forward::failure() const {
    std::lock_guard lock(m_impl->mutex);
    return m_impl->failure;
}

} // namespace labctl::remote
