#include "otlp_http.hpp"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/NullStream.h>
#include <Poco/StreamCopier.h>
#include <opentelemetry/sdk/version/version.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace labctl::taskapi {

namespace {

int month_index(const char* name) {
    static constexpr std::array<const char*, 12> k_months = {
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (std::size_t i = 0; i < k_months.size(); ++i) {
        if (std::strcmp(name, k_months[i]) == 0) {
            return static_cast<int>(i);
        }
    }
    return -1;
}

/// An HTTP-date (RFC 9110 §5.6.7): IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", or the obsolete
/// RFC 850 "Sunday, 06-Nov-94 08:49:37 GMT" and asctime "Sun Nov  6 08:49:37 1994" forms; the
/// whole text must match.
std::optional<std::chrono::system_clock::time_point> parse_http_date(std::string_view value) {
    if (value.size() > 64) {
        return std::nullopt;
    }
    const std::string text(value);
    std::tm tm{};
    std::array<char, 16> weekday{};
    std::array<char, 4> month{};
    int used = -1;
    const auto whole = [&] {
        return used == static_cast<int>(text.size());
    };
    if (std::sscanf(text.c_str(), "%3[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d GMT%n",
                    weekday.data(), &tm.tm_mday, month.data(), &tm.tm_year, &tm.tm_hour, &tm.tm_min,
                    &tm.tm_sec, &used) == 7 &&
        whole()) {
        tm.tm_year -= 1900;
    } else if (used = -1;
               std::sscanf(text.c_str(), "%15[A-Za-z], %2d-%3[A-Za-z]-%2d %2d:%2d:%2d GMT%n",
                           weekday.data(), &tm.tm_mday, month.data(), &tm.tm_year, &tm.tm_hour,
                           &tm.tm_min, &tm.tm_sec, &used) == 7 &&
               whole()) {
        tm.tm_year = tm.tm_year < 70 ? tm.tm_year + 100 : tm.tm_year; // two-digit years
    } else if (used = -1; std::sscanf(text.c_str(), "%3[A-Za-z] %3[A-Za-z] %2d %2d:%2d:%2d %4d%n",
                                      weekday.data(), month.data(), &tm.tm_mday, &tm.tm_hour,
                                      &tm.tm_min, &tm.tm_sec, &tm.tm_year, &used) == 7 &&
                          whole()) {
        tm.tm_year -= 1900;
    } else {
        return std::nullopt;
    }
    tm.tm_mon = month_index(month.data());
    if (tm.tm_mon < 0 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
        tm.tm_sec > 60) {
        return std::nullopt;
    }
    const std::time_t t = timegm(&tm);
    if (t == static_cast<std::time_t>(-1)) {
        return std::nullopt;
    }
    return std::chrono::system_clock::from_time_t(t);
}

} // namespace

std::optional<std::chrono::milliseconds>
parse_retry_after(std::string_view value, std::chrono::system_clock::time_point now) {
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
        value.remove_prefix(1);
    }
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) {
        value.remove_suffix(1);
    }
    if (value.empty()) {
        return std::nullopt;
    }
    if (std::all_of(value.begin(), value.end(),
                    [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; })) {
        // delay-seconds; anything beyond a day is as good as "a very long time".
        std::int64_t seconds = 0;
        for (const char c : value) {
            seconds = std::min<std::int64_t>(seconds * 10 + (c - '0'), 86'400);
        }
        return std::chrono::milliseconds(seconds * 1000);
    }
    const auto at = parse_http_date(value);
    if (!at) {
        return std::nullopt;
    }
    return std::max(std::chrono::milliseconds(0),
                    std::chrono::ceil<std::chrono::milliseconds>(*at - now));
}

OtlpHttpClient::OtlpHttpClient(std::string host, std::uint16_t port, std::string path,
                               std::chrono::milliseconds timeout)
    : m_host(std::move(host)), m_port(port), m_path(std::move(path)), m_timeout(timeout) {}

OtlpHttpClient::~OtlpHttpClient() = default;

bool OtlpHttpClient::send(std::string_view head, std::string_view tail, std::string& error) {
    for (int n = 1;; ++n) {
        Attempt attempt;
        if (post(head, tail, error, attempt)) {
            return true;
        }
        if (n >= k_max_attempts || !attempt.retryable) {
            return false;
        }
        const auto wait =
            attempt.retry_after ? std::min(*attempt.retry_after, k_max_retry_after) : k_backoff;
        if (m_abort.tryWait(static_cast<long>(wait.count()))) {
            return false; // shutting down: no retry, however long the collector asked to wait
        }
    }
}

void OtlpHttpClient::abort() {
    m_abort.set();
    // Wake a POST waiting on a slow collector (shutting the socket down is safe while another
    // thread is blocked on it; closing it is not).
    const std::lock_guard<std::mutex> lock(m_session_mutex);
    m_aborted = true;
    if (m_session) {
        try {
            m_session->socket().shutdown();
        } catch (...) {
        }
    }
}

bool OtlpHttpClient::post(std::string_view head, std::string_view tail, std::string& error,
                          Attempt& attempt) {
    attempt.retryable = true;
    try {
        {
            const std::lock_guard<std::mutex> lock(m_session_mutex);
            if (m_aborted) {
                error = "exporter shut down";
                attempt.retryable = false;
                return false;
            }
            if (!m_session) {
                m_session = std::make_unique<Poco::Net::HTTPClientSession>(m_host, m_port);
                m_session->setTimeout(Poco::Timespan(
                    static_cast<Poco::Timespan::TimeDiff>(m_timeout.count()) * 1000));
                m_session->setKeepAlive(true);
            }
        }
        Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, m_path,
                                       Poco::Net::HTTPMessage::HTTP_1_1);
        request.setContentType("application/x-protobuf");
        request.setContentLength64(static_cast<Poco::Int64>(head.size() + tail.size()));
        request.set("User-Agent", "OTel-OTLP-Exporter-Cpp/" OPENTELEMETRY_SDK_VERSION);
        request.setKeepAlive(true);
        std::ostream& out = m_session->sendRequest(request);
        out.write(head.data(), static_cast<std::streamsize>(head.size()));
        out.write(tail.data(), static_cast<std::streamsize>(tail.size()));
        Poco::Net::HTTPResponse response;
        std::istream& in = m_session->receiveResponse(response);
        Poco::NullOutputStream sink;
        Poco::StreamCopier::copyStream(in, sink); // read it all: the connection is reused
        const int status = static_cast<int>(response.getStatus());
        if (status >= 200 && status < 300) {
            return true;
        }
        error = "HTTP " + std::to_string(status);
        attempt.retryable = status == 429 || status == 502 || status == 503 || status == 504;
        if (attempt.retryable && (status == 429 || status == 503) && response.has("Retry-After")) {
            attempt.retry_after =
                parse_retry_after(response.get("Retry-After"), std::chrono::system_clock::now());
        }
        if (!response.getKeepAlive()) {
            drop_session();
        }
        return false;
    } catch (const Poco::Exception& e) {
        error = e.displayText();
    } catch (const std::exception& e) {
        error = e.what();
    }
    drop_session(); // a fresh connection next time
    return false;
}

void OtlpHttpClient::drop_session() {
    const std::lock_guard<std::mutex> lock(m_session_mutex);
    m_session.reset();
}

} // namespace labctl::taskapi
