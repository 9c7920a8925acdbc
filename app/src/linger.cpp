#include "linger.hpp"

#include <Poco/Net/StreamSocket.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>

namespace labctl::taskapi {

std::uint64_t lingering_close(Poco::Net::StreamSocket& socket, std::uint64_t max_bytes,
                              std::chrono::milliseconds max_time, const std::atomic<bool>& stop) {
    const int fd = socket.impl()->sockfd();
    if (fd < 0 || ::shutdown(fd, SHUT_WR) != 0) {
        return 0;
    }
    using Clock = std::chrono::steady_clock;
    const auto deadline = Clock::now() + max_time;
    std::array<char, 64 * 1024> buf; // not zeroed: only written into
    std::uint64_t discarded = 0;
    while (discarded < max_bytes && !stop.load(std::memory_order_relaxed)) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) {
            break;
        }
        pollfd pfd{};
        pfd.fd = fd;
        pfd.events = POLLIN;
        // Short slices, so that a stopping server does not wait for a slow client.
        const int rc = ::poll(&pfd, 1, static_cast<int>(std::min<long>(left.count(), 200)));
        if (rc < 0 && errno == EINTR) {
            continue;
        }
        if (rc < 0) {
            break;
        }
        if (rc == 0) {
            continue;
        }
        const ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
        if (n > 0) {
            discarded += static_cast<std::uint64_t>(n);
        } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            break; // the client closed its side (or the connection is gone)
        }
    }
    return discarded;
}

} // namespace labctl::taskapi
