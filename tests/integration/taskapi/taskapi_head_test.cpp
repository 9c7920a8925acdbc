// The task API's request heads over real sockets on loopback: the service reads the request line
// and header fields itself (app/src/request_head.hpp), so the status of a refused head comes from
// its own limits: 431 for header fields, 414 for the URI, 400/501/505 for the rest, each with a
// JSON body naming the problem, exactly at the documented limits (app/README.md).

#include <catch2/catch.hpp>
#include <string>

#include "harness.hpp"

using namespace labctl::test::taskapi;

namespace {

struct Api {
    TempDir dir;
    ApiProcess process{dir.path() / "tasks.db", dir.path() / "api.log"};
    std::uint16_t port() const { return process.port(); }
};

/// GET /health with `extra` header lines (each ending in CRLF) after Host.
std::string health_with(const std::string& extra) {
    return "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + "\r\n";
}

/// Sends `raw`; the answer must have `status` and, when refused, a JSON error containing `why`
/// and a closed connection. The service answers the next request either way.
void expect(std::uint16_t port, const std::string& raw, int status, const std::string& why = {}) {
    const auto r = raw_http(port, raw);
    INFO("request head starts " << raw.substr(0, 120) << "\nstatus " << r.status << " body "
                                << r.body);
    CHECK(r.status == status);
    if (status >= 400) {
        const auto j = nlohmann::json::parse(r.body, nullptr, false);
        REQUIRE(j.is_object());
        CHECK(j.value("error", "").find(why) != std::string::npos);
        CHECK(r.header("content-type").rfind("application/json", 0) == 0);
        CHECK(r.header("connection") == "Close");
    }
    REQUIRE(http(port, "GET", "/health").status == 200);
}

std::string fields(int n) {
    std::string out;
    for (int i = 0; i < n; ++i)
        out += "X-F" + std::to_string(i) + ": v\r\n";
    return out;
}

} // namespace

TEST_CASE(
    "taskapi head: header fields up to the limits are served, and a byte or a field over them "
    "gets 431 naming the limit",
    "[taskapi][head]") {
    Api api;
    const auto p = api.port();
    expect(p, health_with("X-Big: " + std::string(8192, 'v') + "\r\n"), 200);
    expect(p, health_with("X-Big: " + std::string(8193, 'v') + "\r\n"), 431,
           "header field value longer than 8192 bytes");
    // Whitespace around a value is not part of it.
    expect(p, health_with("X-Big:   " + std::string(8192, 'v') + "  \r\n"), 200);
    expect(p, health_with(std::string(256, 'N') + ": v\r\n"), 200);
    expect(p, health_with(std::string(257, 'N') + ": v\r\n"), 431,
           "header field name longer than 256 bytes");
    // Host is one field: 99 more make 100, 100 more make 101.
    expect(p, health_with(fields(99)), 200);
    expect(p, health_with(fields(100)), 431, "more than 100 header fields");
    // Far over the limit, sent whole before reading: the client still reads the 431.
    expect(p, health_with("X-Huge: " + std::string(200000, 'h') + "\r\n"), 431,
           "header field value longer than 8192 bytes");
}

TEST_CASE("taskapi head: a request URI of 16384 bytes is served, and one byte more gets 414",
          "[taskapi][head]") {
    Api api;
    const auto p = api.port();
    const std::string prefix = "/health?pad=";
    expect(p, "GET " + prefix + std::string(16384 - prefix.size(), 'u') + " HTTP/1.1\r\n\r\n", 200);
    expect(p, "GET " + prefix + std::string(16385 - prefix.size(), 'u') + " HTTP/1.1\r\n\r\n", 414,
           "request URI longer than 16384 bytes");
    // Cut short while the URI is still arriving.
    expect(p, "GET " + prefix + std::string(100000, 'u') + " HTTP/1.1\r\n\r\n", 414,
           "request URI longer than 16384 bytes");
}

TEST_CASE("taskapi head: malformed request lines and body framing get 400, 501 or 505 naming the "
          "problem, and tolerated forms are served",
          "[taskapi][head]") {
    Api api;
    const auto p = api.port();
    expect(p, std::string(33, 'G') + " /health HTTP/1.1\r\n\r\n", 400,
           "request method longer than 32 bytes");
    expect(p, "GET /health\r\n\r\n", 400, "malformed request line");
    expect(p, "GET /health HTTP/1.1 extra\r\n\r\n", 400, "malformed request line");
    expect(p, "G(T /health HTTP/1.1\r\n\r\n", 400, "malformed request method");
    expect(p, "GET /health HTTX/1.1\r\n\r\n", 400, "malformed HTTP version");
    expect(p, "GET /health HTTP/2.0\r\n\r\n", 505, "HTTP version 2.0 not supported");
    expect(p, health_with("X-A: 1\r\n folded\r\n"), 400, "folded header field");
    expect(p, health_with("no colon here\r\n"), 400, "header line without a colon");
    expect(p, health_with("Bad Name: v\r\n"), 400, "malformed header field name");
    expect(p, health_with("X-A: a\rb\r\n"), 400, "CR not followed by LF");
    const std::string post = "POST /api/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: "
                             "application/json\r\n";
    expect(p, post + "Content-Length: abc\r\n\r\n{}", 400, "Content-Length is not a number");
    expect(p, post + "Content-Length: -2\r\n\r\n{}", 400, "Content-Length is not a number");
    expect(p, post + "Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}", 400,
           "more than one Content-Length");
    expect(p, post + "Transfer-Encoding: gzip\r\n\r\n", 501,
           "Transfer-Encoding 'gzip' not supported");
    expect(p, post + "Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
           400, "both Transfer-Encoding and Content-Length");
    // RFC 9112: an empty line before the request line is ignored, a bare LF ends a line, and
    // HTTP/1.0 is spoken.
    expect(p, "\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n", 200);
    expect(p, "GET /health HTTP/1.1\nHost: x\n\n", 200);
    expect(p, "GET /health HTTP/1.0\r\n\r\n", 200);
    // A chunked body still works.
    expect(p, post + "Transfer-Encoding: chunked\r\n\r\n" + "d\r\n{\"title\":\"c\"}\r\n0\r\n\r\n",
           201);
}
