#pragma once
// Reading an HTTP/1.1 request head (request line and header fields, RFC 9112 §2-5) with our own
// limits, so that the answer to a head over them (431, 414, 400, 505, 501) comes from our own
// check. Poco's parser reports every such case as one exception type that only its English
// text tells apart. Fed byte by byte, so the caller decides where the bytes come from.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace labctl::taskapi {

/// The limits: Poco 1.11's own (HTTPRequest and MessageHeader `Limits`, private there).
inline constexpr std::size_t k_max_method_bytes = 32;
inline constexpr std::size_t k_max_target_bytes = 16384;
inline constexpr std::size_t k_max_field_name_bytes = 256;
inline constexpr std::size_t k_max_field_value_bytes = 8192;
inline constexpr std::size_t k_max_fields = 100;

/// A request head that was read whole and passed every check.
struct RequestHead {
    std::string method;
    std::string target;
    std::string version;                                     ///< "HTTP/1.0" or "HTTP/1.1"
    std::vector<std::pair<std::string, std::string>> fields; ///< in order, values trimmed
    bool chunked = false;                                    ///< Transfer-Encoding: chunked
    std::optional<std::uint64_t> content_length; ///< Content-Length, checked to be a number
};

/// Why a head was refused: the status to answer with and what to say.
struct HeadRefusal {
    int status = 400;
    std::string reason;
};

/// A push parser of one request head.
class HeadReader {
public:
    enum class Step { more, done, refused };

    /// Takes the next byte. After `done` the head is in head(); after `refused` the reason is in
    /// refusal(). Neither takes more bytes afterwards.
    Step feed(char c);

    /// Whether any byte of this head has been fed (an end of input before that is a client that
    /// closed an idle connection, not a malformed request).
    bool started() const { return m_started; }

    RequestHead& head() { return m_head; }
    const HeadRefusal& refusal() const { return m_refusal; }

private:
    enum class State { request_line, field_line };

    Step refuse(int status, std::string reason);
    Step end_request_line();
    Step end_field_line();
    Step finish();

    State m_state = State::request_line;
    bool m_started = false;
    std::size_t m_leading_newlines = 0;
    std::string m_line;                      ///< the current line, without its CR LF
    std::size_t m_colon = std::string::npos; ///< where the current field line's colon is
    bool m_cr = false;                       ///< the previous byte was CR
    RequestHead m_head;
    HeadRefusal m_refusal;
};

} // namespace labctl::taskapi
