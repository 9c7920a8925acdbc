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

#include "fake_internal.hpp"

namespace labctl::test::verify {

using nlohmann::json;
using namespace detail;

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

// open-telemetry/opentelemetry-collector-contrib@v0.96.0 (and the current v0.159.0):
// extension/healthcheckextension/internal/healthcheck/handler.go — application/json
// {"status":"Server available","upSince":<RFC 3339>,"uptime":<Go duration>} with 200 when Ready,
// 503 {"status":"Server not available","upSince":"0001-01-01T00:00:00Z","uptime":""} otherwise.
// (/metrics here is a text exposition for the real-Prometheus tests, not the health port's.)
Reply FakeStack::collector(const Request& r) {
    if (r.path == "/metrics")
        return {200, "# TYPE fixture_up gauge\nfixture_up 1\n", "text/plain; version=0.0.4"};
    if (m_quirks.collector_unavailable)
        return {
            503,
            R"({"status":"Server not available","upSince":"0001-01-01T00:00:00Z","uptime":""})"};
    return {
        200,
        R"({"status":"Server available","upSince":"2026-11-27T06:00:00.123456789Z","uptime":"1h2m3.5s"})"};
}

// The task API behind nginx (app/src): what verify needs of it, plus the bookkeeping the fake
// Prometheus uses to decide which series exist (the real API's metrics, app/src/metrics.cpp,
// count every /api/* request; /health and / are probes and are not counted).
Reply FakeStack::api(const Request& r) {
    if (r.path == "/")
        return {200, "<!doctype html><title>tasks</title>", "text/html"};
    if (r.path == "/health")
        return {200, R"({"status":"healthy","database":"ok"})"};
    const bool tasks = r.path == "/api/tasks" && r.method == "GET";
    const bool smoke = r.path == "/api/smoke/db" && r.method == "POST";
    if (!tasks && !smoke) {
        std::lock_guard lock(m_mutex);
        m_api_statuses.push_back(404);
        return {404, R"({"error":"Not found"})"};
    }
    {
        std::lock_guard lock(m_mutex);
        m_api_statuses.push_back(200);
        m_api_smoke = m_api_smoke || smoke;
    }
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
        push.body = json{{"trace_id", trace}, {"message", r.method + " " + r.path + " 200"}}.dump();
        push.timeout = std::chrono::seconds(2);
        if (labctl::verify::http_request(push).status == 204)
            ++m_loki_204;
    }
    if (smoke)
        return {200, R"({"ok":true,"requested_ops":1,"performed":{"read":1,"write":0}})"};
    return {200, R"({"tasks":[],"count":0})"};
}

std::vector<std::string> FakeStack::grafana_requests() const {
    std::lock_guard lock(m_mutex);
    return m_grafana_log;
}

const PinVersions& pin_versions(PinSet pins) {
    static const PinVersions k_original{"10.2.3", "2.3.1", "2.9.3", "0.96.0", "2.48.1"};
    static const PinVersions k_current{"12.3.1", "2.10.8", "3.7.6", "0.159.0", "3.14.0"};
    return pins == PinSet::original ? k_original : k_current;
}

const char* to_string(PinSet pins) {
    return pins == PinSet::original ? "original" : "current";
}

} // namespace labctl::test::verify
