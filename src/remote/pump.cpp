#include "pump.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace labctl::remote::detail {

namespace {

/// Bytes buffered per direction before a link stops reading that side (back-pressure).
constexpr std::size_t k_max_pending = 256 * 1024;
constexpr std::size_t k_chunk = 32 * 1024;

bool would_block(long rc) {
    return rc == LIBSSH2_ERROR_EAGAIN;
}

} // namespace

bool writable_now(int fd) {
    pollfd p{fd, POLLOUT, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & POLLOUT) != 0;
}

void close_socket(Socket& s, bool reset) {
    if (s.fd() < 0)
        return;
    if (reset) {
        linger l{1, 0};
        ::setsockopt(s.fd(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    s = Socket();
}

void SendGate::after(GateUser* user, int op, long rc) {
    if (rc == LIBSSH2_ERROR_EAGAIN &&
        (libssh2_session_block_directions(m_s) & LIBSSH2_SESSION_BLOCK_OUTBOUND) != 0) {
        m_owner = user;
        m_op = op;
    } else if (m_owner == user && m_op == op) {
        m_owner = nullptr;
        m_op = 0;
    }
}

void SendGate::keepalive(int session_fd) {
    if (!idle() || !writable_now(session_fd))
        return;
    int next = 0;
    libssh2_keepalive_send(m_s, &next);
}

Link::Link(LIBSSH2_SESSION* s, int session_fd, ChannelPtr channel, Socket local)
    : m_s(s), m_session_fd(session_fd), m_channel(std::move(channel)), m_local(std::move(local)) {}

void Link::fail(int code, std::string why) {
    m_failed = true;
    m_code = code;
    m_error = std::move(why);
}

void Link::do_read(SendGate& gate) {
    std::array<char, k_chunk> buf{};
    const auto n = libssh2_channel_read(m_channel.get(), buf.data(), buf.size());
    gate.after(this, op_read, n);
    if (n > 0) {
        m_to_local.append(buf.data(), static_cast<std::size_t>(n));
        return;
    }
    if (n < 0 && !would_block(n)) {
        fail(static_cast<int>(n), fmt::format("reading from the jump host: {}", last_error(m_s)));
        return;
    }
    if (libssh2_channel_eof(m_channel.get()) != 0)
        m_remote_eof = true;
}

void Link::do_write(SendGate& gate) {
    const auto n = libssh2_channel_write(m_channel.get(), m_to_remote.data(), m_to_remote.size());
    gate.after(this, op_write, n);
    if (n > 0) {
        m_to_remote.erase(0, static_cast<std::size_t>(n));
        return;
    }
    if (n < 0 && !would_block(n))
        fail(static_cast<int>(n), fmt::format("writing to the jump host: {}", last_error(m_s)));
}

void Link::do_eof(SendGate& gate) {
    const int rc = libssh2_channel_send_eof(m_channel.get());
    gate.after(this, op_eof, rc);
    if (rc == 0)
        m_sent_eof = true;
    else if (!would_block(rc))
        fail(rc, fmt::format("sending EOF to the jump host: {}", last_error(m_s)));
}

void Link::retry(SendGate& gate) {
    switch (gate.op()) {
    case op_read:
        return do_read(gate);
    case op_write:
        return do_write(gate);
    case op_eof:
        return do_eof(gate);
    default:
        return;
    }
}

void Link::local_io() {
    std::array<char, k_chunk> buf{};
    // buffer -> local socket
    while (!m_failed && !m_to_local.empty()) {
        const auto n =
            ::send(m_local.fd(), m_to_local.data(), m_to_local.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            m_to_local.erase(0, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            break;
        fail(0, fmt::format("the local side closed the connection ({})",
                            n < 0 ? std::strerror(errno) : "no progress"));
        return;
    }
    if (m_remote_eof && m_to_local.empty() && !m_shut_local) {
        ::shutdown(m_local.fd(), SHUT_WR);
        m_shut_local = true;
    }
    // local socket -> buffer
    while (!m_failed && !m_local_eof && m_to_remote.size() < k_max_pending) {
        const auto n = ::recv(m_local.fd(), buf.data(), buf.size(), MSG_DONTWAIT);
        if (n > 0) {
            m_to_remote.append(buf.data(), static_cast<std::size_t>(n));
            continue;
        }
        if (n == 0) {
            m_local_eof = true;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            fail(0, fmt::format("the local side reset the connection ({})", std::strerror(errno)));
        }
        break;
    }
}

void Link::step(SendGate& gate) {
    if (done())
        return;
    // channel -> buffer
    while (gate.idle() && !m_failed && !m_remote_eof && m_to_local.size() < k_max_pending) {
        const auto before = m_to_local.size();
        do_read(gate);
        if (m_to_local.size() == before)
            break;
    }
    local_io();
    // buffer -> channel
    while (gate.idle() && !m_failed && !m_to_remote.empty()) {
        const auto before = m_to_remote.size();
        do_write(gate);
        if (m_to_remote.size() == before)
            break;
    }
    if (gate.idle() && !m_failed && m_local_eof && m_to_remote.empty() && !m_sent_eof &&
        writable_now(m_session_fd))
        do_eof(gate);
}

short Link::local_events() const {
    short ev = 0;
    if (done())
        return ev;
    if (!m_local_eof && m_to_remote.size() < k_max_pending)
        ev |= POLLIN;
    if (!m_to_local.empty())
        ev |= POLLOUT;
    return ev;
}

bool Link::wants_channel_input() const {
    if (done())
        return false;
    // Input brings data for the buffer, or the window adjust a waiting write needs.
    return (!m_remote_eof && m_to_local.size() < k_max_pending) || !m_to_remote.empty();
}

bool Link::has_queued_input() const {
    if (done() || m_remote_eof || m_to_local.size() >= k_max_pending)
        return false;
    unsigned long queued = 0;
    libssh2_channel_window_read_ex(m_channel.get(), &queued, nullptr);
    return queued > 0 || libssh2_channel_eof(m_channel.get()) != 0;
}

void Link::close_local(bool reset) {
    close_socket(m_local, reset);
}

std::string session_socket_lost(int fd, short revents) {
    if ((revents & (POLLERR | POLLHUP | POLLNVAL)) != 0)
        return "the connection to the jump host was lost";
    if ((revents & (POLLIN | POLLRDHUP)) != 0) {
        char c = 0;
        const auto n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0)
            return "the jump host closed the connection";
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return fmt::format("the connection to the jump host failed: {}", std::strerror(errno));
    }
    return {};
}

bool channel_only_error(int code) {
    switch (code) {
    case LIBSSH2_ERROR_CHANNEL_OUTOFORDER:
    case LIBSSH2_ERROR_CHANNEL_FAILURE:
    case LIBSSH2_ERROR_CHANNEL_REQUEST_DENIED:
    case LIBSSH2_ERROR_CHANNEL_UNKNOWN:
    case LIBSSH2_ERROR_CHANNEL_WINDOW_EXCEEDED:
    case LIBSSH2_ERROR_CHANNEL_PACKET_EXCEEDED:
    case LIBSSH2_ERROR_CHANNEL_CLOSED:
    case LIBSSH2_ERROR_CHANNEL_EOF_SENT:
        return true;
    default:
        return false;
    }
}

} // namespace labctl::remote::detail
