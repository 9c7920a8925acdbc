#pragma once
// The wire pipeline's OTLP/HTTP client (wire_pipeline.cpp): POSTs protobuf bodies to one plain
// http:// endpoint over a kept-alive Poco connection, with one retry for the answers that invite
// one, after the collector's Retry-After when it sends one.

#include <Poco/Event.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace Poco::Net {
class HTTPClientSession;
}

namespace labctl::taskapi {

/// The wait a `Retry-After` header value asks for (RFC 9110 §10.2.3): delay-seconds (digits
/// only) or an HTTP-date (IMF-fixdate, and the obsolete RFC 850 and asctime forms), relative to
/// `now`; a date in the past is zero. nullopt for anything else (then the default back-off
/// applies). Not capped: the caller bounds it.
std::optional<std::chrono::milliseconds>
parse_retry_after(std::string_view value, std::chrono::system_clock::time_point now);

class OtlpHttpClient {
public:
    /// The longest Retry-After honoured: a collector asking for more waits this long.
    static constexpr std::chrono::milliseconds k_max_retry_after{30'000};

    OtlpHttpClient(std::string host, std::uint16_t port, std::string path,
                   std::chrono::milliseconds timeout);
    ~OtlpHttpClient();
    OtlpHttpClient(const OtlpHttpClient&) = delete;
    OtlpHttpClient& operator=(const OtlpHttpClient&) = delete;

    /// POSTs `head` followed by `tail` as one body, with one retry (as the SDK exporter is set
    /// up: retry_policy_max_attempts = 2) for 429, 502, 503, 504 and network errors: after the
    /// answer's Retry-After (at most k_max_retry_after), else after 1 s. abort() ends the wait.
    /// False with `error` set when the body did not arrive.
    bool send(std::string_view head, std::string_view tail, std::string& error);

    /// Makes a running and every later `send` fail at once, waits included.
    void abort();

private:
    static constexpr int k_max_attempts = 2;
    static constexpr std::chrono::milliseconds k_backoff{1000}; // the SDK's initial back-off

    struct Attempt {
        bool retryable = false;
        std::optional<std::chrono::milliseconds> retry_after;
    };
    bool post(std::string_view head, std::string_view tail, std::string& error, Attempt& attempt);
    void drop_session();

    std::string m_host;
    std::uint16_t m_port;
    std::string m_path;
    std::chrono::milliseconds m_timeout;
    Poco::Event m_abort{Poco::Event::EVENT_MANUALRESET};
    std::mutex m_session_mutex; ///< guards the pointer and m_aborted, not the session's use
    bool m_aborted = false;
    std::unique_ptr<Poco::Net::HTTPClientSession> m_session;
};

} // namespace labctl::taskapi
