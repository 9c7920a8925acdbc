#include "server.hpp"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/URI.h>
#include <opentelemetry/context/propagation/text_map_propagator.h>
#include <opentelemetry/context/runtime_context.h>
#include <opentelemetry/trace/context.h>
#include <opentelemetry/trace/propagation/http_trace_context.h>
#include <opentelemetry/trace/scope.h>
#include <opentelemetry/trace/span_startoptions.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <istream>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#include "json_log.hpp"
#include "json_text.hpp"
#include "linger.hpp"
#include "metrics.hpp"
#include "task_input.hpp"
#include "task_store.hpp"
#include "telemetry.hpp"

namespace labctl::taskapi {

namespace trace = opentelemetry::trace;
namespace nostd = opentelemetry::nostd;
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

namespace {

/// Whether the current request's body was read to its end (so keep-alive is safe).
thread_local bool t_body_consumed = false;

enum class RouteId { health, metrics, tasks, task, simulate_error, simulate_slow, smoke_db, none };

const std::array<std::string_view, 9> k_known_methods = {
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE"};

std::string method_label(const std::string& method) {
    for (const auto known : k_known_methods) {
        if (method == known) {
            return method;
        }
    }
    return "_OTHER";
}

Reply json_reply(int status, std::string body) {
    Reply r;
    r.status = status;
    r.body = std::move(body);
    return r;
}

Reply error_reply(int status, std::string_view message) {
    return json_reply(status, error_body(message));
}

/// 503 for a request that ran out of memory, built without allocating (the body is shared and
/// made at start): the server's condition, possibly passing, never the client's fault (400).
const std::shared_ptr<const std::string> k_out_of_memory_body =
    std::make_shared<const std::string>(error_body("server out of memory; retry later"));

Reply out_of_memory_reply() noexcept {
    Reply r;
    r.status = 503;
    r.shared_body = k_out_of_memory_body;
    r.close = true;
    return r;
}

/// Reads the request's trace context headers for the W3C propagator.
class RequestCarrier final : public opentelemetry::context::propagation::TextMapCarrier {
public:
    explicit RequestCarrier(const HTTPServerRequest& request) : m_request(request) {
        const auto it = m_request.find("traceparent");
        // An invalid traceparent is ignored together with its tracestate (W3C Trace Context).
        m_valid = it != m_request.end() && valid_traceparent(it->second);
    }
    bool valid() const { return m_valid; }
    nostd::string_view Get(nostd::string_view key) const noexcept override {
        if (!m_valid) {
            return "";
        }
        // Header names compared in place (find() would want a std::string of the key).
        const std::string_view wanted(key.data(), key.size());
        for (const auto& [name, value] : m_request) {
            if (name.size() == wanted.size() &&
                std::equal(name.begin(), name.end(), wanted.begin(), [](char a, char b) {
                    return std::tolower(static_cast<unsigned char>(a)) ==
                           std::tolower(static_cast<unsigned char>(b));
                })) {
                return nostd::string_view(value.data(), value.size());
            }
        }
        return "";
    }
    void Set(nostd::string_view, nostd::string_view) noexcept override {}

private:
    const HTTPServerRequest& m_request;
    bool m_valid = false;
};

/// A client error found while handling; becomes a 400 with this message.
struct BadRequest : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// Reads and discards up to `cap` bytes of the request body; true when the body ended. Used
/// before refusing a body, so that closing the connection does not reset it under the client
/// before it has read our answer.
bool drain(HTTPServerRequest& request, std::size_t cap) {
    try {
        std::istream& in = request.stream();
        std::array<char, 8192> buf{};
        std::size_t total = 0;
        while (in && total < cap) {
            in.read(buf.data(), buf.size());
            total += static_cast<std::size_t>(in.gcount());
        }
        return !in || in.eof();
    } catch (const Poco::Exception&) {
        return false;
    }
}

constexpr std::size_t k_drain_cap = 1024 * 1024;

/// First value of `name` in an application/x-www-form-urlencoded query; throws BadRequest on
/// bad percent-encoding.
std::optional<std::string> query_value(const std::string& query, std::string_view name) {
    std::size_t pos = 0;
    while (pos <= query.size()) {
        const std::size_t amp = std::min(query.find('&', pos), query.size());
        const std::string_view part(query.data() + pos, amp - pos);
        const std::size_t eq = part.find('=');
        std::string key;
        try {
            Poco::URI::decode(std::string(part.substr(0, eq)), key, true);
        } catch (const Poco::SyntaxException&) {
            throw BadRequest("malformed query string (bad percent-encoding)");
        }
        if (key == name) {
            std::string value;
            if (eq != std::string_view::npos) {
                try {
                    Poco::URI::decode(std::string(part.substr(eq + 1)), value, true);
                } catch (const Poco::SyntaxException&) {
                    throw BadRequest("query parameter '" + std::string(name) +
                                     "' is not valid percent-encoding");
                }
            }
            return value;
        }
        pos = amp + 1;
    }
    return std::nullopt;
}

} // namespace

struct App::Route {
    RouteId id = RouteId::none;
    const char* templ = nullptr; ///< route template, null when no route matched
    const char* allow = "";      ///< methods allowed on the route
    std::string_view id_segment;
};

App::App(const Config& config, Metrics& metrics, Telemetry& telemetry, JsonLog& log,
         TaskStore* store)
    : m_config(config), m_metrics(metrics), m_telemetry(telemetry), m_log(log), m_store(store) {}

void App::begin_stop() {
    m_stopping.store(true);
    m_wake.set();
}

Reply App::read_json_body(HTTPServerRequest& request, std::string& body, bool& ok) {
    ok = false;
    const bool has_body = request.hasContentLength() || request.getChunkedTransferEncoding();
    if (!is_json_media_type(request.getContentType())) {
        Reply r = error_reply(415, "Content-Type must be application/json");
        r.close = has_body;
        if (has_body && (!request.hasContentLength() ||
                         request.getContentLength64() <= static_cast<Poco::Int64>(k_drain_cap))) {
            drain(request, k_drain_cap);
        }
        return r;
    }
    if (request.hasContentLength() && request.getContentLength64() > 0 &&
        static_cast<std::uint64_t>(request.getContentLength64()) > k_max_body_bytes) {
        Reply r =
            error_reply(413, "request body exceeds " + std::to_string(k_max_body_bytes) + " bytes");
        r.close = true;
        if (request.getContentLength64() <= static_cast<Poco::Int64>(k_drain_cap)) {
            drain(request, k_drain_cap);
        }
        return r;
    }
    try {
        if (request.getExpectContinue()) {
            request.response().sendContinue(); // curl asks for this before bodies > 1 KiB
        }
        std::istream& in = request.stream();
        body.resize(k_max_body_bytes + 1);
        std::size_t got = 0;
        while (got < body.size() && in) {
            in.read(body.data() + got, static_cast<std::streamsize>(body.size() - got));
            got += static_cast<std::size_t>(in.gcount());
        }
        body.resize(got);
    } catch (const Poco::Exception&) {
        Reply r = error_reply(400, "malformed request body");
        r.close = true;
        return r;
    }
    if (body.size() > k_max_body_bytes) {
        Reply r =
            error_reply(413, "request body exceeds " + std::to_string(k_max_body_bytes) + " bytes");
        r.close = true;
        drain(request, k_drain_cap);
        return r;
    }
    ok = true;
    t_body_consumed = true;
    return {};
}

Reply App::dispatch(const Route& route, HTTPServerRequest& request, const std::string& query) {
    const std::string& method = request.getMethod();
    switch (route.id) {
    case RouteId::tasks: {
        if (method == "GET") {
            Reply r;
            r.shared_body = m_store->list_json();
            return r;
        }
        std::string body;
        bool ok = false;
        Reply failure = read_json_body(request, body, ok);
        if (!ok) {
            return failure;
        }
        const auto parsed = parse_task_input(body, InputMode::create);
        if (!parsed.input) {
            return error_reply(400, parsed.error);
        }
        const Task task = m_store->create(*parsed.input);
        std::string out;
        append_task_json(out, task);
        return json_reply(201, std::move(out));
    }
    case RouteId::task: {
        const auto id = parse_task_id(route.id_segment);
        if (method == "PUT") {
            std::string body;
            bool ok = false;
            Reply failure = read_json_body(request, body, ok);
            if (!ok) {
                return failure;
            }
            if (!id) {
                return error_reply(404, "Task not found");
            }
            const auto parsed = parse_task_input(body, InputMode::update);
            if (!parsed.input) {
                return error_reply(400, parsed.error);
            }
            const auto task = m_store->update(*id, *parsed.input);
            if (!task) {
                return error_reply(404, "Task not found");
            }
            std::string out;
            append_task_json(out, *task);
            return json_reply(200, std::move(out));
        }
        if (!id) {
            return error_reply(404, "Task not found");
        }
        if (method == "GET") {
            const auto task = m_store->get(*id);
            if (!task) {
                return error_reply(404, "Task not found");
            }
            std::string out;
            append_task_json(out, *task);
            return json_reply(200, std::move(out));
        }
        if (!m_store->remove(*id)) {
            return error_reply(404, "Task not found");
        }
        return json_reply(200, R"({"message":"Task deleted successfully"})");
    }
    case RouteId::simulate_error:
        return error_reply(500, "This is a simulated error");
    case RouteId::simulate_slow: {
        const auto delay = parse_delay(query_value(query, "delay"));
        if (!delay) {
            return error_reply(400, "query parameter 'delay' must be a number of seconds between "
                                    "0 and 10 (larger values are capped at 10)");
        }
        const auto ms = static_cast<long>(std::lround(*delay * 1000.0));
        if (ms > 0) {
            m_wake.tryWait(ms); // returns early only when the server is stopping
        }
        std::string out = R"({"message":"Slow response completed","delay_seconds":)";
        append_json_number(out, *delay, 3);
        out += '}';
        return json_reply(200, std::move(out));
    }
    case RouteId::smoke_db: {
        const auto ops =
            parse_count(query_value(query, "ops"), k_default_smoke_ops, k_max_smoke_ops);
        if (!ops) {
            return error_reply(400, "query parameter 'ops' must be an integer between 1 and " +
                                        std::to_string(k_max_smoke_ops));
        }
        const std::string type = query_value(query, "type").value_or("read");
        if (type != "read" && type != "write" && type != "rw") {
            return error_reply(400, "query parameter 'type' must be one of read, write, rw");
        }
        const auto result = m_store->smoke(*ops, type != "write", type != "read");
        return json_reply(200, "{\"ok\":true,\"requested_ops\":" + std::to_string(*ops) +
                                   ",\"performed\":{\"read\":" + std::to_string(result.reads) +
                                   ",\"write\":" + std::to_string(result.writes) + "}}");
    }
    case RouteId::health:
    case RouteId::metrics:
    case RouteId::none:
        break;
    }
    return error_reply(404, "Not found");
}

void App::handle(HTTPServerRequest& request, HTTPServerResponse& response,
                 Poco::Net::StreamSocket& socket, ConnectionPeer& peer) {
    const auto start = std::chrono::steady_clock::now();
    t_body_consumed = false;
    if (m_stopping) {
        response.setKeepAlive(false);
    }
    const std::string& method = request.getMethod();
    if (m_store == nullptr) { // --trivial: the ceiling of this server configuration
        send_reply(request, response, socket, json_reply(200, R"({"status":"ok"})"));
        return;
    }

    const std::string& target = request.getURI();
    const std::size_t qmark = target.find('?');
    const std::string path = target.substr(0, qmark);
    const std::string query = qmark == std::string::npos ? std::string() : target.substr(qmark + 1);

    Route route;
    constexpr std::string_view k_task_prefix = "/api/tasks/";
    if (path == "/health") {
        route = {RouteId::health, "/health", "GET", {}};
    } else if (path == "/metrics") {
        route = {RouteId::metrics, "/metrics", "GET", {}};
    } else if (path == "/api/tasks") {
        route = {RouteId::tasks, "/api/tasks", "GET, POST", {}};
    } else if (path.size() > k_task_prefix.size() && path.starts_with(k_task_prefix) &&
               path.find('/', k_task_prefix.size()) == std::string::npos) {
        route = {RouteId::task, "/api/tasks/{id}", "GET, PUT, DELETE",
                 std::string_view(path).substr(k_task_prefix.size())};
    } else if (path == "/api/simulate-error") {
        route = {RouteId::simulate_error, "/api/simulate-error", "GET", {}};
    } else if (path == "/api/simulate-slow") {
        route = {RouteId::simulate_slow, "/api/simulate-slow", "GET", {}};
    } else if (path == "/api/smoke/db") {
        route = {RouteId::smoke_db, "/api/smoke/db", "POST", {}};
    }
    bool method_ok = false;
    if (route.templ != nullptr) {
        const std::string_view allow = route.allow;
        std::size_t pos = 0;
        while (pos < allow.size() && !method_ok) {
            const std::size_t comma = std::min(allow.find(", ", pos), allow.size());
            method_ok = allow.substr(pos, comma - pos) == method;
            pos = comma + 2;
        }
    }

    // Probes and scrapes: no spans, no SLI series, no info logs.
    if ((route.id == RouteId::health || route.id == RouteId::metrics) && method_ok) {
        Reply reply;
        if (route.id == RouteId::metrics) {
            reply.body = m_metrics.serialize();
            reply.content_type = k_metrics_content_type;
        } else {
            std::string error;
            const bool ok = m_store->healthy(error);
            std::string body = ok ? R"({"status":"healthy","database":"ok","timestamp":")"
                                  : R"({"status":"unhealthy","error":)";
            if (!ok) {
                append_json_string(body, "database unavailable: " + error);
                body += R"(,"timestamp":")";
            }
            body += iso8601_utc_now() + "\"}";
            reply = json_reply(ok ? 200 : 503, std::move(body));
        }
        if ((request.hasContentLength() && request.getContentLength64() > 0) ||
            request.getChunkedTransferEncoding()) {
            reply.close = true; // a body we did not read
        }
        send_reply(request, response, socket, reply);
        m_log.log(LogLevel::debug, "probe",
                  {{"method", std::string_view(method)},
                   {"route", std::string_view(route.templ)},
                   {"status_code", std::int64_t{reply.status}}});
        return;
    }

    // SERVER span continuing the caller's trace (an invalid traceparent starts a new trace).
    const std::string mlabel = method_label(method);
    trace::StartSpanOptions options;
    options.kind = trace::SpanKind::kServer;
    if (const RequestCarrier carrier(request); carrier.valid()) {
        auto current = opentelemetry::context::RuntimeContext::GetCurrent();
        options.parent = trace::propagation::HttpTraceContext().Extract(carrier, current);
    } else {
        // Without a valid traceparent the span starts a new trace: skip the propagator's header
        // look-ups and context copies, and say "root" with an empty context (an invalid
        // SpanContext would make the tracer look up the thread's active span).
        options.parent = opentelemetry::context::Context();
    }
    const std::string span_name = route.templ != nullptr ? mlabel + " " + route.templ
                                                         : (mlabel == "_OTHER" ? "HTTP" : mlabel);
    // server.address: the Host header without port (and without IPv6 brackets).
    std::string server_address = request.getHost();
    if (!server_address.empty() && server_address.front() == '[') {
        server_address = server_address.substr(1, server_address.find(']') - 1);
    } else if (const auto colon = server_address.rfind(':'); colon != std::string::npos) {
        server_address.resize(colon);
    }
    if (server_address.empty()) {
        server_address = m_config.host;
    }
    if (!peer.known) {
        peer.client_address = request.clientAddress().host().toString();
        peer.server_port = static_cast<std::int64_t>(request.serverAddress().port());
        peer.known = true;
    }
    // All attributes known up front go in at start (one pass, one lock in the SDK).
    std::vector<std::pair<nostd::string_view, opentelemetry::common::AttributeValue>> attrs;
    attrs.reserve(12);
    attrs.emplace_back("http.request.method", nostd::string_view(mlabel));
    if (mlabel == "_OTHER") {
        attrs.emplace_back("http.request.method_original", nostd::string_view(method));
    }
    if (route.templ != nullptr) {
        attrs.emplace_back("http.route", nostd::string_view(route.templ));
    }
    attrs.emplace_back("url.path", nostd::string_view(path));
    if (!query.empty()) {
        attrs.emplace_back("url.query", nostd::string_view(query));
    }
    attrs.emplace_back("url.scheme", nostd::string_view("http"));
    attrs.emplace_back("server.address", nostd::string_view(server_address));
    attrs.emplace_back("server.port", peer.server_port);
    attrs.emplace_back("client.address", nostd::string_view(peer.client_address));
    attrs.emplace_back("network.protocol.version",
                       nostd::string_view(request.getVersion() == "HTTP/1.0" ? "1.0" : "1.1"));
    const auto user_agent = request.find("User-Agent");
    if (user_agent != request.end()) {
        attrs.emplace_back("user_agent.original", nostd::string_view(user_agent->second));
    }
    const auto since_start = std::chrono::steady_clock::now() - start;
    options.start_steady_time = opentelemetry::common::SteadyTimestamp(start);
    options.start_system_time = opentelemetry::common::SystemTimestamp(
        std::chrono::system_clock::now() -
        std::chrono::duration_cast<std::chrono::system_clock::duration>(since_start));
    auto span = m_telemetry.tracer().StartSpan(span_name, attrs, options);

    Reply reply;
    const auto span_context = span->GetContext();
    {
        const RequestSpanScope scope(span_context); // parent of the CLIENT (SQL) spans
        try {
            if (route.templ == nullptr) {
                reply = error_reply(404, "Not found");
            } else if (!method_ok) {
                reply = error_reply(405, "Method " + method + " not allowed on " + route.templ);
                reply.allow = route.allow;
            } else {
                reply = dispatch(route, request, query);
            }
        } catch (const BadRequest& e) {
            reply = error_reply(400, e.what());
        } catch (const Poco::SyntaxException&) {
            reply = error_reply(400, "malformed query string");
        } catch (const Poco::Exception& e) {
            span->AddEvent("exception", {{"exception.type", e.className()},
                                         {"exception.message", e.displayText()}});
            m_log.log(LogLevel::error, "request failed: " + e.displayText(), span_context);
            reply = error_reply(500, "Internal server error");
        } catch (const WriteNotConfirmed& e) {
            // Not acknowledged (it may still be stored): the client may retry.
            span->AddEvent("exception", {{"exception.message", e.what()}});
            m_log.log(LogLevel::error, std::string("request failed: ") + e.what(), span_context);
            reply = error_reply(503, "The database did not confirm the write in time");
        } catch (const std::bad_alloc&) {
            reply = out_of_memory_reply(); // allocates nothing: no message, no event
        } catch (const std::exception& e) {
            span->AddEvent("exception", {{"exception.message", e.what()}});
            m_log.log(LogLevel::error, std::string("request failed: ") + e.what(), span_context);
            reply = error_reply(500, "Internal server error");
        }
    }
    // A body we did not read would be parsed as the next request: close instead, lingering
    // (linger.hpp) so the client reads our answer rather than a reset.
    const bool unread_body =
        !t_body_consumed && ((request.hasContentLength() && request.getContentLength64() > 0) ||
                             request.getChunkedTransferEncoding());
    if (unread_body) {
        reply.close = true;
    }
    try {
        send_reply(request, response, socket, reply);
    } catch (const Poco::Exception&) {
        // The client went away; still record the request below.
    }

    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    span->SetAttribute("http.response.status_code", static_cast<std::int64_t>(reply.status));
    if (reply.status >= 500) {
        span->SetStatus(trace::StatusCode::kError,
                        reply.status == 500 ? "Internal Server Error" : "Server Error");
        span->SetAttribute("error.type", std::to_string(reply.status));
    }
    span->End();
    m_metrics.observe_request(mlabel, route.templ != nullptr ? route.templ : "unmatched",
                              reply.status, elapsed.count());
    const LogLevel level = reply.status >= 500   ? LogLevel::error
                           : reply.status >= 400 ? LogLevel::warn
                                                 : LogLevel::info;
    m_log.log(level, "request completed", span_context,
              {{"method", std::string_view(mlabel)},
               {"route", std::string_view(route.templ != nullptr ? route.templ : "unmatched")},
               {"path", std::string_view(path)},
               {"status_code", std::int64_t{reply.status}},
               {"duration_seconds", elapsed.count()}});
    if (unread_body) {
        // Bounded: twice the declared length (the whole body and then some), at least 1 MiB, at
        // most 64 MiB, and 5 s (nginx's lingering_timeout).
        const auto declared = request.hasContentLength() && request.getContentLength64() > 0
                                  ? static_cast<std::uint64_t>(request.getContentLength64())
                                  : std::uint64_t{0};
        const std::uint64_t cap =
            std::clamp<std::uint64_t>(2 * declared, k_drain_cap, std::uint64_t{64} << 20);
        lingering_close(socket, cap, std::chrono::seconds(5), m_stopping);
    }
}

} // namespace labctl::taskapi
