#include "tunnel.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>

#include <labctl/core/log.hpp>

namespace labctl::remote::detail {

Session connect_jump(const ConnectOptions& options) {
    ConnectOptions jo = options;
    jo.endpoint = options.jump->endpoint;
    jo.private_key = options.jump->private_key;
    jo.use_agent = options.jump->use_agent;
    jo.jump.reset();
    try {
        return Session::connect(jo);
    } catch (const ConnectError& e) {
        throw ConnectError(e.code(), fmt::format("jump host: {}", e.what()), e.hint());
    } catch (const HostKeyError& e) {
        // The user pins a jump host by hand (labctl provisions only the guests' keys).
        throw HostKeyError(e.reason(), e.pattern(), fmt::format("jump host: {}", e.what()),
                           e.reason() == HostKeyError::Reason::mismatch
                               ? e.hint()
                               : fmt::format("the VMs are reached through this host: check its "
                                             "fingerprint out of band, then pin it, e.g. from "
                                             "your own known_hosts: ssh-keygen -F '{}' | grep -v "
                                             "'^#' >> {} ('labctl doctor' checks it)",
                                             e.pattern(), options.known_hosts));
    } catch (const Error& e) {
        throw Error(e.code(), fmt::format("jump host: {}", e.what()), e.hint());
    }
}

ConnectError channel_open_error(LIBSSH2_SESSION* s, const std::string& via, const Endpoint& target,
                                std::chrono::milliseconds io_timeout) {
    const int code = libssh2_session_last_errno(s);
    if (code == LIBSSH2_ERROR_TIMEOUT || code == LIBSSH2_ERROR_SOCKET_TIMEOUT)
        return ConnectError(ExitCode::timeout,
                            fmt::format("ssh: the jump host {} did not open a connection to "
                                        "{}:{} within {} ms",
                                        via, target.host, target.port, io_timeout.count()),
                            "is the jump host answering, and the target up?");
    // OpenSSH answers "Connect failed" while the target is not listening yet (a booting guest)
    // and "administratively prohibited" when forwarding is off: libssh2 reports both as a
    // channel failure, so both are retried until the caller's wait runs out, and the final
    // message names the jump's setting too.
    return ConnectError(ExitCode::ssh,
                        fmt::format("ssh: the jump host {} could not connect to {}:{}: {}", via,
                                    target.host, target.port, last_error(s)),
                        fmt::format("is {}:{} up and reachable from the jump host, and does "
                                    "its sshd allow forwarding (AllowTcpForwarding)?",
                                    target.host, target.port));
}

std::unique_ptr<Tunnel> Tunnel::open(const ConnectOptions& options, Socket& local_end) {
    Session jump = connect_jump(options);
    LIBSSH2_SESSION* s = SessionAccess::raw(jump);
    const auto& target = options.endpoint;
    const std::string via = jump.endpoint().to_string();
    // Blocking, within the jump session's io_timeout: the jump host connects to the target.
    LIBSSH2_CHANNEL* raw =
        libssh2_channel_direct_tcpip_ex(s, target.host.c_str(), target.port, "127.0.0.1", 0);
    if (raw == nullptr)
        throw channel_open_error(s, via, target, options.io_timeout);
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
    : m_jump(std::move(jump)), m_link(SessionAccess::raw(m_jump), SessionAccess::fd(m_jump),
                                      std::move(channel), std::move(far_end)) {
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
    ::shutdown(m_link.local_fd(), SHUT_RDWR);
}

void Tunnel::pump() noexcept {
    LIBSSH2_SESSION* s = SessionAccess::raw(m_jump);
    const int jfd = SessionAccess::fd(m_jump);
    libssh2_session_set_blocking(s, 0);
    SendGate gate(s);
    auto finish = [&] {
        libssh2_session_set_blocking(s, 1);
        libssh2_session_set_timeout(s, 2000);
    };
    try {
        while (!m_stop) {
            if (GateUser* owner = gate.owner())
                owner->retry(gate);
            m_link.step(gate);
            if (m_link.failed()) {
                fail(m_link.error());
                return finish();
            }
            if (m_link.done())
                return finish(); // both sides said goodbye
            gate.keepalive(jfd);

            const int dir = libssh2_session_block_directions(s);
            std::array<pollfd, 2> fds{};
            fds[0] = {jfd, 0, 0};
            if (!gate.idle())
                fds[0].events = POLLOUT; // only the half-sent packet may move
            else if (m_link.wants_channel_input())
                fds[0].events |= POLLIN;
            if ((dir & LIBSSH2_SESSION_BLOCK_OUTBOUND) != 0 ||
                (m_link.eof_due() && !writable_now(jfd)))
                fds[0].events |= POLLOUT;
            fds[1] = {m_link.local_fd(), m_link.local_events(), 0};
            const int wait = gate.idle() && m_link.has_queued_input() ? 0 : k_pump_poll_ms;
            if (::poll(fds.data(), fds.size(), wait) < 0 && errno != EINTR) {
                fail(fmt::format("poll: {}", std::strerror(errno)));
                return finish();
            }
            if (auto lost = session_socket_lost(jfd, fds[0].revents); !lost.empty()) {
                fail(std::move(lost));
                return finish();
            }
        }
        finish();
    } catch (...) {
        fail("the tunnel's pump failed");
        finish();
    }
}

} // namespace labctl::remote::detail
