#include "tunnel.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>

#include <labctl/core/log.hpp>

namespace labctl::remote::detail {

namespace {

/// Bytes buffered per direction before the pump stops reading that side (back-pressure).
constexpr std::size_t k_max_pending = 256 * 1024;
/// The pump's poll interval: how long a stop request or a keepalive may wait.
constexpr int k_poll_ms = 100;

bool would_block(int rc) {
    return rc == LIBSSH2_ERROR_EAGAIN;
}

} // namespace

std::unique_ptr<Tunnel> Tunnel::open(const ConnectOptions& options, Socket& local_end) {
    ConnectOptions jo = options;
    jo.endpoint = options.jump->endpoint;
    jo.private_key = options.jump->private_key;
    jo.use_agent = options.jump->use_agent;
    jo.jump.reset();
    Session jump = [&] {
        try {
            return Session::connect(jo);
        } catch (const ConnectError& e) {
            throw ConnectError(e.code(), fmt::format("jump host: {}", e.what()), e.hint());
        } catch (const HostKeyError& e) {
            // The user pins a jump host by hand (labctl provisions only the guests' keys).
            throw HostKeyError(
                e.reason(), e.pattern(), fmt::format("jump host: {}", e.what()),
                e.reason() == HostKeyError::Reason::mismatch
                    ? e.hint()
                    : fmt::format("the VMs are reached through this host: check its fingerprint "
                                  "out of band, then pin it, e.g. from your own known_hosts: "
                                  "ssh-keygen -F '{}' | grep -v '^#' >> {} ('labctl doctor' "
                                  "checks it)",
                                  e.pattern(), options.known_hosts));
        } catch (const Error& e) {
            throw Error(e.code(), fmt::format("jump host: {}", e.what()), e.hint());
        }
    }();
    LIBSSH2_SESSION* s = jump.m_impl->s();
    const auto& target = options.endpoint;
    const std::string via = jump.endpoint().to_string();
    // Blocking, within the jump session's io_timeout: the jump host connects to the target.
    LIBSSH2_CHANNEL* raw =
        libssh2_channel_direct_tcpip_ex(s, target.host.c_str(), target.port, "127.0.0.1", 0);
    if (raw == nullptr) {
        const int code = libssh2_session_last_errno(s);
        const std::string why = last_error(s);
        if (code == LIBSSH2_ERROR_TIMEOUT || code == LIBSSH2_ERROR_SOCKET_TIMEOUT)
            throw ConnectError(ExitCode::timeout,
                               fmt::format("ssh: the jump host {} did not open a connection to "
                                           "{}:{} within {} ms",
                                           via, target.host, target.port,
                                           options.io_timeout.count()),
                               "is the jump host answering, and the target up?");
        // OpenSSH answers "Connect failed" while the target is not listening yet (a booting
        // guest) and "administratively prohibited" when forwarding is off: libssh2 reports both
        // as a channel failure, so both are retried until the caller's wait runs out, and the
        // final message names the jump's setting too.
        throw ConnectError(ExitCode::ssh,
                           fmt::format("ssh: the jump host {} could not connect to {}:{}: {}", via,
                                       target.host, target.port, why),
                           fmt::format("is {}:{} up and reachable from the jump host, and does "
                                       "its sshd allow forwarding (AllowTcpForwarding)?",
                                       target.host, target.port));
    }
    ChannelPtr channel(raw);
    int pair[2] = {-1, -1};
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
        throw Error(ExitCode::internal,
                    fmt::format("socketpair for the jump tunnel: {}", std::strerror(errno)));
    local_end = Socket(pair[0]);
    Socket far(pair[1]);
    ::fcntl(far.fd(), F_SETFL, ::fcntl(far.fd(), F_GETFL) | O_NONBLOCK);
    log::debug("ssh: tunnel to {}:{} through jump host {} open", target.host, target.port, via);
    return std::unique_ptr<Tunnel>(new Tunnel(std::move(jump), std::move(channel), std::move(far)));
}

Tunnel::Tunnel(Session jump, ChannelPtr channel, Socket far_end)
    : m_jump(std::move(jump)), m_channel(std::move(channel)), m_end(std::move(far_end)) {
    m_thread = std::thread([this] { pump(); });
}

Tunnel::~Tunnel() {
    m_stop = true;
    if (m_thread.joinable())
        m_thread.join();
    // The pump left the session blocking with a short timeout: closing the channel and the
    // goodbye of the jump session cannot hang on a jump host that stopped answering.
}

std::string Tunnel::failure() const {
    std::lock_guard lock(m_mutex);
    return m_failure;
}

void Tunnel::fail(std::string why) noexcept {
    try {
        log::debug("ssh: jump tunnel through {} ended: {}", m_jump.endpoint().to_string(), why);
        std::lock_guard lock(m_mutex);
        m_failure = std::move(why);
    } catch (...) {
        // Only the message is lost; the socket below still tells the session.
    }
    // The session over the other end sees the connection close, as it would over TCP.
    ::shutdown(m_end.fd(), SHUT_RDWR);
}

void Tunnel::pump() noexcept {
    LIBSSH2_SESSION* s = m_jump.m_impl->s();
    LIBSSH2_CHANNEL* ch = m_channel.get();
    const int jfd = m_jump.m_impl->sock.fd();
    const int lfd = m_end.fd();
    libssh2_session_set_blocking(s, 0);
    std::string to_local;  // from the channel, not yet written to the local socket
    std::string to_remote; // from the local socket, not yet written to the channel
    bool remote_eof = false, local_eof = false, sent_eof = false, shut_local = false;
    std::array<char, 32 * 1024> buf{};
    auto finish = [&] {
        libssh2_session_set_blocking(s, 1);
        libssh2_session_set_timeout(s, 2000);
    };
    try {
        while (!m_stop) {
            // channel -> local
            while (!remote_eof && to_local.size() < k_max_pending) {
                const auto n = libssh2_channel_read(ch, buf.data(), buf.size());
                if (n > 0) {
                    to_local.append(buf.data(), static_cast<std::size_t>(n));
                    continue;
                }
                if (n < 0 && !would_block(static_cast<int>(n))) {
                    fail(fmt::format("reading from the jump host: {}", last_error(s)));
                    return finish();
                }
                if (libssh2_channel_eof(ch) != 0)
                    remote_eof = true;
                break;
            }
            while (!to_local.empty()) {
                const auto n =
                    ::send(lfd, to_local.data(), to_local.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n > 0) {
                    to_local.erase(0, static_cast<std::size_t>(n));
                    continue;
                }
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                    break;
                return finish(); // the session over the tunnel is gone: nothing to tell it
            }
            if (remote_eof && to_local.empty() && !shut_local) {
                ::shutdown(lfd, SHUT_WR);
                shut_local = true;
            }
            // local -> channel
            while (!local_eof && to_remote.size() < k_max_pending) {
                const auto n = ::recv(lfd, buf.data(), buf.size(), MSG_DONTWAIT);
                if (n > 0) {
                    to_remote.append(buf.data(), static_cast<std::size_t>(n));
                    continue;
                }
                if (n == 0)
                    local_eof = true;
                else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                    local_eof = true; // our own end failed: treat as closed
                break;
            }
            while (!to_remote.empty()) {
                const auto n = libssh2_channel_write(ch, to_remote.data(), to_remote.size());
                if (n > 0) {
                    to_remote.erase(0, static_cast<std::size_t>(n));
                    continue;
                }
                if (n < 0 && !would_block(static_cast<int>(n))) {
                    fail(fmt::format("writing to the jump host: {}", last_error(s)));
                    return finish();
                }
                break;
            }
            if (local_eof && to_remote.empty() && !sent_eof) {
                const int rc = libssh2_channel_send_eof(ch);
                if (rc == 0)
                    sent_eof = true;
                else if (!would_block(rc)) {
                    fail(fmt::format("closing the tunnel: {}", last_error(s)));
                    return finish();
                }
            }
            if (sent_eof && (shut_local || local_eof))
                return finish(); // the session over the tunnel said goodbye
            int next = 0;
            libssh2_keepalive_send(s, &next);

            const int dir = libssh2_session_block_directions(s);
            std::array<pollfd, 2> fds{};
            fds[0] = {jfd, 0, 0};
            if (to_local.size() < k_max_pending)
                fds[0].events |= POLLIN;
            if ((dir & LIBSSH2_SESSION_BLOCK_OUTBOUND) != 0)
                fds[0].events |= POLLOUT;
            fds[1] = {lfd, 0, 0};
            if (!local_eof && to_remote.size() < k_max_pending)
                fds[1].events |= POLLIN;
            if (!to_local.empty())
                fds[1].events |= POLLOUT;
            if (::poll(fds.data(), fds.size(), k_poll_ms) < 0 && errno != EINTR) {
                fail(fmt::format("poll: {}", std::strerror(errno)));
                return finish();
            }
            if ((fds[0].revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) {
                fail("the connection to the jump host was lost");
                return finish();
            }
            if ((fds[0].revents & POLLIN) != 0) {
                char c = 0;
                const auto n = ::recv(jfd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
                // libssh2 1.10 reads a closed transport as "no data": ask the socket.
                if (n == 0) {
                    fail("the jump host closed the connection");
                    return finish();
                }
            }
        }
        finish();
    } catch (...) {
        fail("the tunnel's pump failed");
        finish();
    }
}

} // namespace labctl::remote::detail
