#pragma once
// The body of one GET of an image or checksum file: HTTP(S) through Poco (redirects followed,
// a byte range asked for, every wait bounded, Ctrl-C honoured), or a file:/// URL read directly.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace labctl::image {

struct SourceOptions {
    std::chrono::milliseconds connect_timeout{20000};
    std::chrono::milliseconds stall_timeout{60000}; ///< bound of every single read
    int max_redirects = 10;
};

/// Thrown by open_source when the server says the range starts past the resource's end (416):
/// the partial file is longer than the resource, so it cannot be a prefix of it.
struct RangeNotSatisfiable {};

/// An open response body.
class BodySource {
public:
    virtual ~BodySource() = default;
    /// Up to `n` bytes into `buf`; 0 at the end of the body. Throws Error when the body is cut
    /// short (exit 3), stalls for stall_timeout (exit 4) or Ctrl-C arrives (Interrupted).
    virtual std::size_t read(char* buf, std::size_t n) = 0;

    std::uint64_t start = 0;            ///< offset in the resource of the first byte read()
    std::optional<std::uint64_t> total; ///< the whole resource's length when the server said
    std::string final_url;              ///< after redirects
    std::string validator;              ///< ETag (strong) or Last-Modified, for If-Range
};

/// GETs `url` from byte `offset` (Range, with If-Range: `if_range` when not empty). A server that
/// sends the whole resource instead (no range support, or the resource changed) gives start 0.
/// HTTP errors, redirect loops, https→http redirects, TLS and connection failures are
/// Error(preflight) naming the URL; no connection within connect_timeout is Error(timeout).
std::unique_ptr<BodySource> open_source(const std::string& url, std::uint64_t offset,
                                        const std::string& if_range, const SourceOptions& options);

} // namespace labctl::image
