#include "fake_stack.hpp"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/StreamCopier.h>
#include <Poco/URI.h>
#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <regex>
#include <stdexcept>
#include <thread>

#include <labctl/core/encoding.hpp>
#include <labctl/verify/http.hpp>

namespace labctl::test::verify {

using nlohmann::json;

namespace {

class Handler : public Poco::Net::HTTPRequestHandler {
public:
    explicit Handler(const std::function<Reply(const Request&)>& fn) : m_fn(fn) {}
    void handleRequest(Poco::Net::HTTPServerRequest& req,
                       Poco::Net::HTTPServerResponse& resp) override {
        Request r;
        r.method = req.getMethod();
        const Poco::URI uri(req.getURI());
        r.path = uri.getPath();
        r.query = uri.getRawQuery();
        for (const auto& [k, v] : req) {
            std::string key = k;
            for (auto& ch : key)
                ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            r.headers[key] = v;
        }
        Poco::StreamCopier::copyToString(req.stream(), r.body);
        Reply reply;
        try {
            reply = m_fn(r);
        } catch (const std::exception& e) {
            reply = {500, json{{"error", e.what()}}.dump()};
        }
        resp.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(reply.status));
        if (reply.status == 204) {
            resp.setContentLength(0);
            resp.send();
            return;
        }
        resp.setContentType(reply.content_type);
        resp.sendBuffer(reply.body.data(), reply.body.size());
    }

private:
    const std::function<Reply(const Request&)>& m_fn;
};

class Factory : public Poco::Net::HTTPRequestHandlerFactory {
public:
    explicit Factory(const std::function<Reply(const Request&)>& fn) : m_fn(fn) {}
    Poco::Net::HTTPRequestHandler*
    createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
        return new Handler(m_fn);
    }

private:
    const std::function<Reply(const Request&)>& m_fn;
};

std::string hex_to_bytes(const std::string& hex) {
    std::string out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
        out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    return out;
}

std::string b64(const std::string& hex) {
    return base64_encode(hex_to_bytes(hex));
}

std::string strip_zeros(const std::string& hex) {
    const auto p = hex.find_first_not_of('0');
    return p == std::string::npos ? "0" : hex.substr(p);
}

long long now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

bool balanced(const std::string& expr) {
    int depth = 0;
    for (const char c : expr) {
        if (c == '(' || c == '[' || c == '{')
            ++depth;
        else if (c == ')' || c == ']' || c == '}')
            --depth;
        if (depth < 0)
            return false;
    }
    return depth == 0;
}

json attr(const std::string& key, const std::string& value) {
    return {{"key", key}, {"value", {{"stringValue", value}}}};
}

} // namespace

std::string Request::param(const std::string& name) const {
    Poco::URI uri("/?" + query);
    for (const auto& [k, v] : uri.getQueryParameters())
        if (k == name)
            return v;
    return {};
}

struct FixtureServer::Impl {
    std::function<Reply(const Request&)> handler;
    Poco::Net::ServerSocket socket{Poco::Net::SocketAddress("127.0.0.1", 0)};
    std::unique_ptr<Poco::Net::HTTPServer> server;
};

FixtureServer::FixtureServer(std::function<Reply(const Request&)> handler)
    : m_impl(std::make_unique<Impl>()) {
    m_impl->handler = std::move(handler);
    m_port = m_impl->socket.address().port();
    auto* params = new Poco::Net::HTTPServerParams;
    params->setKeepAlive(false);
    params->setMaxThreads(16);
    m_impl->server = std::make_unique<Poco::Net::HTTPServer>(new Factory(m_impl->handler),
                                                             m_impl->socket, params);
    m_impl->server->start();
}

FixtureServer::~FixtureServer() {
    m_impl->server->stopAll(true);
}

std::string FixtureServer::url() const {
    return fmt::format("http://127.0.0.1:{}", m_port);
}

BlackHole::BlackHole() {
    m_fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (m_fd < 0 || ::bind(m_fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(m_fd, 64) != 0 ||
        ::getsockname(m_fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
        throw std::runtime_error("black hole listener failed");
    m_port = ntohs(addr.sin_port);
}

BlackHole::~BlackHole() {
    if (m_fd >= 0)
        ::close(m_fd);
}

std::string BlackHole::url() const {
    return fmt::format("http://127.0.0.1:{}", m_port);
}

FakeStack::FakeStack(Quirks quirks, bool with_prometheus) : m_quirks(std::move(quirks)) {
    using Member = Reply (FakeStack::*)(const Request&);
    const auto serve = [this](Member m) {
        return std::make_unique<FixtureServer>([this, m](const Request& r) {
            if (m_quirks.latency_ms > 0)
                std::this_thread::sleep_for(std::chrono::milliseconds(m_quirks.latency_ms));
            return (this->*m)(r);
        });
    };
    m_collector = serve(&FakeStack::collector);
    m_tempo = serve(&FakeStack::tempo);
    m_loki = serve(&FakeStack::loki);
    m_grafana = serve(&FakeStack::grafana);
    if (with_prometheus)
        m_prometheus = serve(&FakeStack::prometheus);
    m_nginx = serve(&FakeStack::api);
}

FakeStack::~FakeStack() {
    // Stop the front first: its handler pushes to Loki.
    m_nginx.reset();
}

std::map<std::string, std::string> FakeStack::endpoints() const {
    std::map<std::string, std::string> e{
        {"nginx", m_nginx->url()}, {"api", m_nginx->url()}, {"grafana", m_grafana->url()},
        {"tempo", m_tempo->url()}, {"loki", m_loki->url()}, {"collector", m_collector->url()},
    };
    if (m_prometheus)
        e["prometheus"] = m_prometheus->url();
    return e;
}

int FakeStack::metrics_port() const {
    return m_collector->port();
}

std::vector<std::string> FakeStack::traces() const {
    std::lock_guard lock(m_mutex);
    std::vector<std::string> out;
    for (const auto& [t, p] : m_trace_parent)
        out.push_back(t);
    return out;
}

void FakeStack::ingest_spans(const std::string& trace_id, const std::string& resource_spans_json) {
    std::lock_guard lock(m_mutex);
    m_ingested[trace_id].push_back(resource_spans_json);
}

void FakeStack::ingest_log(const std::string& trace_id, const std::string& body) {
    std::lock_guard lock(m_mutex);
    m_log_lines.emplace_back(trace_id, body);
}

Reply FakeStack::collector(const Request& r) {
    if (r.path == "/metrics")
        return {200, "# TYPE fixture_up gauge\nfixture_up 1\n", "text/plain; version=0.0.4"};
    if (m_quirks.collector_unavailable)
        return {503, R"({"status":"Server not available","upSince":"0001-01-01T00:00:00Z"})"};
    return {200, R"({"status":"Server available","upSince":"2026-11-27T06:00:00Z","uptime":"1h"})"};
}

Reply FakeStack::api(const Request& r) {
    if (r.path == "/")
        return {200, "<!doctype html><title>tasks</title>", "text/html"};
    if (r.path == "/health")
        return {200, R"({"status":"healthy","database":"ok"})"};
    const bool tasks = r.path == "/api/tasks" && r.method == "GET";
    const bool smoke = r.path == "/api/smoke/db" && r.method == "POST";
    if (!tasks && !smoke)
        return {404, R"({"error":"Not found"})"};
    static const std::regex k_tp("00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]");
    std::smatch m;
    const auto it = r.headers.find("traceparent");
    if (it != r.headers.end() && std::regex_match(it->second, m, k_tp)) {
        const std::string trace = m[1], parent = m[2];
        {
            std::lock_guard lock(m_mutex);
            m_trace_parent[trace] = parent;
            m_trace_route[trace] = r.method + " " + r.path;
        }
        // The API's log record goes to Loki's push API, which answers 204 No Content.
        labctl::verify::HttpRequest push;
        push.method = "POST";
        push.url = m_loki->url() + "/loki/api/v1/push";
        push.content_type = "application/json";
        push.body = json{{"trace_id", trace}, {"message", "GET /api/tasks 200"}}.dump();
        push.timeout = std::chrono::seconds(2);
        if (labctl::verify::http_request(push).status == 204)
            ++m_loki_204;
    }
    if (smoke)
        return {200, R"({"ok":true,"requested_ops":1,"performed":{"read":1,"write":0}})"};
    return {200, R"({"tasks":[],"count":0})"};
}

Reply FakeStack::tempo(const Request& r) {
    if (r.path == "/ready")
        return {200, "ready", "text/plain"};
    if (r.path == "/api/echo")
        return {200, "echo", "text/plain"};
    if (r.path == "/api/search") {
        json traces = json::array();
        std::lock_guard lock(m_mutex);
        for (const auto& [t, p] : m_trace_parent)
            traces.push_back({{"traceID", strip_zeros(t)}, {"rootServiceName", "task-api"}});
        for (const auto& [t, spans] : m_ingested)
            traces.push_back({{"traceID", strip_zeros(t)}, {"rootServiceName", "task-api"}});
        return {200, json{{"traces", traces}}.dump()};
    }
    static const std::regex k_trace("/api/traces/([0-9a-f]{32})");
    std::smatch m;
    if (!std::regex_match(r.path, m, k_trace))
        return {404, "404 page not found\n", "text/plain"};
    ++m_tempo_polls;
    const std::string id = m[1];
    std::string parent, name;
    {
        std::lock_guard lock(m_mutex);
        const int asked = ++m_asked[id];
        if (const auto in = m_ingested.find(id); in != m_ingested.end()) {
            // Real spans decoded from the task API's OTLP export, served as Tempo v1 does.
            json rs = json::array();
            for (const auto& one : in->second)
                rs.push_back(json::parse(one));
            return {200, json{{"batches", rs}}.dump()};
        }
        const auto it = m_trace_parent.find(id);
        if (it == m_trace_parent.end() || asked <= m_quirks.tempo_polls_before_found)
            return {404, "trace not found", "text/plain"};
        parent = it->second;
        name = m_trace_route[id];
    }
    const std::string route = name.substr(name.find(' ') + 1);
    const std::string server_id = "00f067aa0ba902b7";
    const std::string db_id = "53995c3f42cd8ad8";
    const json spans = json::array(
        {{{"traceId", b64(id)},
          {"spanId", b64(server_id)},
          {"parentSpanId", b64(parent)},
          {"name", name},
          {"kind", "SPAN_KIND_SERVER"},
          {"attributes",
           json::array({attr("http.route", route),
                        attr("http.request.method", name.substr(0, name.find(' ')))})}},
         {{"traceId", b64(id)},
          {"spanId", b64(db_id)},
          {"parentSpanId", b64(server_id)},
          {"name", "SELECT tasks"},
          {"kind", "SPAN_KIND_CLIENT"},
          {"attributes",
           json::array({attr("db.system.name", "sqlite"), attr("db.operation.name", "SELECT")})}}});
    const json rs = json::array(
        {{{"resource", {{"attributes", json::array({attr("service.name", "task-api")})}}},
          {"scopeSpans", json::array({{{"scope", {{"name", "task-api"}}}, {"spans", spans}}})}}});
    if (m_quirks.tempo_v2)
        return {200, json{{"trace", {{"resourceSpans", rs}}}}.dump()};
    return {200, json{{"batches", rs}}.dump()};
}

Reply FakeStack::loki(const Request& r) {
    if (r.path == "/ready")
        return {200, "ready", "text/plain"};
    if (r.path == "/loki/api/v1/push" && r.method == "POST") {
        const auto j = json::parse(r.body);
        std::lock_guard lock(m_mutex);
        m_log_lines.emplace_back(j.at("trace_id").get<std::string>(),
                                 j.at("message").get<std::string>());
        return {204, ""};
    }
    if (r.path != "/loki/api/v1/query_range")
        return {404, "404 page not found\n", "text/plain"};
    const auto query = r.param("query");
    static const std::regex k_id("[0-9a-f]{32}");
    std::smatch m;
    if (!std::regex_search(query, m, k_id))
        return {400, "parse error", "text/plain"};
    const std::string id = m[0];
    json result = json::array();
    const bool v3_query = query.find(R"(service_name="task-api")") != std::string::npos;
    const bool v29_query = query.find(R"(exporter="OTLP")") != std::string::npos;
    std::lock_guard lock(m_mutex);
    const bool own_flavour = m_quirks.loki_3x ? v3_query : v29_query;
    if (own_flavour && ++m_loki_asked[id] <= m_quirks.loki_polls_before_found)
        return {200, json{{"status", "success"},
                          {"data", {{"resultType", "streams"}, {"result", result}}}}
                         .dump()};
    for (const auto& [trace, message] : m_log_lines) {
        if (trace != id)
            continue;
        if (m_quirks.loki_3x && v3_query) {
            // 3.x: structured metadata merged into the stream labels of the answer.
            result.push_back(
                {{"stream",
                  {{"service_name", "task-api"}, {"trace_id", trace}, {"detected_level", "info"}}},
                 {"values", json::array({json::array({std::to_string(now_ns()), message})})}});
        } else if (!m_quirks.loki_3x && v29_query) {
            const json line{{"body", message},
                            {"traceid", trace},
                            {"spanid", "00f067aa0ba902b7"},
                            {"severity", "INFO"},
                            {"resources", {{"service.name", "task-api"}}}};
            result.push_back(
                {{"stream", {{"exporter", "OTLP"}, {"job", "task-api"}, {"level", "INFO"}}},
                 {"values", json::array({json::array({std::to_string(now_ns()), line.dump()})})}});
        }
    }
    return {200,
            json{{"status", "success"}, {"data", {{"resultType", "streams"}, {"result", result}}}}
                .dump()};
}

Reply FakeStack::grafana(const Request& r) {
    if (r.path == "/api/health")
        return {200, R"({"commit":"abc","database":"ok","version":"10.2.3"})"};
    static const std::regex k_ds("/api/datasources/uid/([a-z]+)(/health)?");
    std::smatch m;
    if (std::regex_match(r.path, m, k_ds)) {
        const std::string uid = m[1];
        if (uid != "prometheus" && uid != "tempo" && uid != "loki")
            return {404, R"({"message":"Data source not found"})"};
        if (!m[2].matched)
            return {200, json{{"uid", uid}, {"type", uid}, {"name", uid}}.dump()};
        if (uid == "tempo" && m_quirks.grafana_tempo_health_error)
            // The message even says OK somewhere: only `status` counts.
            return {
                400,
                R"({"status":"ERROR","message":"OK response expected from tempo:3200, got connection refused"})"};
        return {200, R"({"status":"OK","message":"Data source is working"})"};
    }
    if (r.path == "/api/dashboards/uid/sli-slo-dashboard") {
        json panels = json::array(
            {{{"id", 1},
              {"title", "Availability"},
              {"type", "gauge"},
              {"datasource", {{"type", "prometheus"}, {"uid", "prometheus"}}},
              {"targets",
               json::array({{{"expr", "100 * (1 - (sum(rate(http_errors_total[$__rate_interval])) "
                                      "/ sum(rate(http_requests_total[$__rate_interval]))))"},
                             {"refId", "A"}}})}},
             {{"id", 2},
              {"title", "Latency"},
              {"type", "row"},
              {"collapsed", true},
              {"panels",
               json::array(
                   {{{"id", 3},
                     {"title", "P95 latency"},
                     {"targets", json::array({{{"expr", "histogram_quantile(0.95, "
                                                        "sum(rate(http_request_duration_"
                                                        "seconds_bucket[5m])) by (le))"}}})}}})}}});
        if (m_quirks.broken_panel)
            panels.push_back(
                {{"id", 9},
                 {"title", "Error budget"},
                 {"datasource", {{"type", "prometheus"}, {"uid", "prometheus"}}},
                 {"targets", json::array({{{"expr", "sum(rate(http_errors_total[30d])"}}})}});
        return {200, json{{"dashboard",
                           {{"uid", "sli-slo-dashboard"},
                            {"title", "SLI/SLO Dashboard - Task Manager"},
                            {"panels", panels}}},
                          {"meta", {{"provisioned", true}, {"slug", "sli-slo-dashboard"}}}}
                         .dump()};
    }
    if (r.path == "/api/dashboards/uid/end-to-end-tracing") {
        const json panels = json::array(
            {{{"id", 1},
              {"title", "Traces"},
              {"datasource", {{"type", "tempo"}, {"uid", "tempo"}}},
              {"targets", json::array({{{"query", R"({ resource.service.name = "task-api" })"},
                                        {"queryType", "traceql"}}})}},
             {{"id", 2},
              {"title", "Logs"},
              {"datasource", {{"type", "loki"}, {"uid", "loki"}}},
              {"targets", json::array({{{"expr", R"({service_name="task-api"} |= "")"}}})}}});
        return {200, json{{"dashboard",
                           {{"uid", "end-to-end-tracing"},
                            {"title", "End-to-End Tracing Dashboard"},
                            {"panels", panels}}},
                          {"meta", {{"provisioned", true}}}}
                         .dump()};
    }
    return {404, R"({"message":"Not found"})"};
}

Reply FakeStack::prometheus(const Request& r) {
    if (r.path == "/-/ready")
        return {200, "Prometheus Server is Ready.\n", "text/plain"};
    if (r.path == "/api/v1/targets") {
        json targets = json::array();
        for (const auto& job : m_quirks.jobs)
            targets.push_back({{"labels", {{"job", job}}},
                               {"scrapePool", job},
                               {"scrapeUrl", "http://" + job + ":9100/metrics"},
                               {"health", "up"},
                               {"lastError", ""}});
        return {200, json{{"status", "success"},
                          {"data", {{"activeTargets", targets}, {"droppedTargets", json::array()}}}}
                         .dump()};
    }
    if (r.path == "/api/v1/query") {
        const auto q = r.param("query");
        if (!balanced(q))
            return {400, json{{"status", "error"},
                              {"errorType", "bad_data"},
                              {"error", "1:34: parse error: unclosed left parenthesis"}}
                             .dump()};
        return {200,
                json{{"status", "success"},
                     {"data",
                      {{"resultType", "vector"},
                       {"result", json::array({{{"metric", json::object()},
                                                {"value", json::array({1732690000.0, "NaN"})}}})}}}}
                    .dump()};
    }
    return {404, "404 page not found\n", "text/plain"};
}

} // namespace labctl::test::verify
