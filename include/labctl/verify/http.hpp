#pragma once
// A small HTTP/1.1 client for the checks: one request per connection, a hard timeout for the
// whole exchange, no exceptions for network failures (status 0 and the error text instead).

#include <chrono>
#include <map>
#include <string>

namespace labctl::verify {

struct HttpRequest {
    std::string method = "GET";
    std::string url; ///< http://host:port/path?query
    std::string body;
    std::string content_type;
    std::map<std::string, std::string> headers;
    std::chrono::milliseconds timeout{5000};
};

struct HttpResponse {
    int status = 0;    ///< 0: no response (see error)
    std::string error; ///< connection refused, timeout, bad URL ...
    std::string body;
    std::map<std::string, std::string> headers; ///< lower-case names
    std::chrono::milliseconds elapsed{0};
};

HttpResponse http_request(const HttpRequest& request);
HttpResponse http_get(const std::string& url, std::chrono::milliseconds timeout);

/// Percent-encodes a query parameter value.
std::string url_encode(const std::string& value);

/// The first `limit` bytes of a body on one line (control characters replaced), "…" when cut.
std::string excerpt(const std::string& body, std::size_t limit = 200);

} // namespace labctl::verify
