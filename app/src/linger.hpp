#pragma once
// Closing a connection whose request body was not read, the way nginx's lingering close does:
// closing a socket with unread data makes the kernel answer with a reset, which can destroy our
// response before the client reads it (a client that writes the whole body before reading, as
// Python's http.client without Expect: 100-continue, then gets "connection reset" instead of
// the 413).

#include <atomic>
#include <chrono>
#include <cstdint>

namespace Poco::Net {
class StreamSocket;
}

namespace labctl::taskapi {

/// After the response has been sent: half-closes (shutdown SHUT_WR, so the client sees the end of
/// our answer), then reads and discards what the client still sends until it closes its side,
/// `max_bytes` were discarded, `max_time` passed, or `stop` becomes true. The caller closes the
/// socket afterwards. Returns the bytes discarded.
std::uint64_t lingering_close(Poco::Net::StreamSocket& socket, std::uint64_t max_bytes,
                              std::chrono::milliseconds max_time, const std::atomic<bool>& stop);

} // namespace labctl::taskapi
