// Traces and logs of the task API, received by a real OTLP/HTTP sink on loopback that decodes
// protobuf with classes generated from the official opentelemetry-proto files. Also: telemetry
// trouble (collector down, slow, answering 503) never fails or slows a request.

#include <Poco/Event.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/StreamCopier.h>
#include <opentelemetry/proto/collector/logs/v1/logs_service.pb.h>
#include <opentelemetry/proto/collector/trace/v1/trace_service.pb.h>
#include <opentelemetry/sdk/resource/resource.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <mutex>
#include <new>
#include <thread>

#include "harness.hpp"
#include "metrics.hpp"
#include "otlp_http.hpp"
#include "otlp_wire.hpp"

using namespace labctl::test::taskapi;
namespace otlp = opentelemetry::proto;

namespace {

std::string to_hex(const std::string& bytes) {
    static const char* k_digits = "0123456789abcdef";
    std::string out;
    for (const unsigned char c : bytes) {
        out.push_back(k_digits[c >> 4]);
        out.push_back(k_digits[c & 0x0F]);
    }
    return out;
}

std::string any_to_string(const otlp::common::v1::AnyValue& v) {
    switch (v.value_case()) {
    case otlp::common::v1::AnyValue::kStringValue:
        return v.string_value();
    case otlp::common::v1::AnyValue::kIntValue:
        return std::to_string(v.int_value());
    case otlp::common::v1::AnyValue::kBoolValue:
        return v.bool_value() ? "true" : "false";
    case otlp::common::v1::AnyValue::kDoubleValue:
        return std::to_string(v.double_value());
    case otlp::common::v1::AnyValue::kArrayValue: {
        std::string out = "[";
        for (const auto& e : v.array_value().values()) {
            out += (out.size() > 1 ? "," : "") + any_to_string(e);
        }
        return out + "]";
    }
    case otlp::common::v1::AnyValue::kBytesValue:
        return "bytes:" + to_hex(v.bytes_value());
    default:
        return "<" + std::to_string(static_cast<int>(v.value_case())) + ">";
    }
}

using Attributes = std::map<std::string, std::string>;

Attributes attributes(const google::protobuf::RepeatedPtrField<otlp::common::v1::KeyValue>& kvs) {
    Attributes out;
    for (const auto& kv : kvs) {
        out[kv.key()] = any_to_string(kv.value());
    }
    return out;
}

struct EventRec {
    std::string name;
    std::uint64_t time_ns = 0;
    Attributes attrs;
};

struct LinkRec {
    std::string trace_id, span_id, trace_state;
    std::uint32_t flags = 0;
    Attributes attrs;
};

struct SpanRec {
    std::string trace_id, span_id, parent_span_id, name, trace_state, status_message;
    std::string scope_name, scope_version;
    std::vector<EventRec> events;
    std::vector<LinkRec> links;
    int kind = 0;
    int status = 0;
    std::uint32_t flags = 0;
    std::uint64_t start_ns = 0, end_ns = 0;
    Attributes attrs, resource;
};

struct LogRec {
    std::string trace_id, span_id, body, severity_text, event_name, scope_name;
    int severity_number = 0;
    std::uint32_t flags = 0;
    std::uint64_t time_ns = 0, observed_ns = 0;
    Attributes attrs, resource;
};

enum class SinkMode { ok, fail_503, slow };

/// An OTLP/HTTP receiver (POST /v1/traces, /v1/logs, protobuf) on 127.0.0.1.
class OtlpSink {
public:
    explicit OtlpSink(SinkMode mode, std::chrono::milliseconds slow = std::chrono::seconds(3))
        : m_mode(mode), m_slow(slow), m_socket(Poco::Net::SocketAddress(k_loopback, 0)) {
        auto* params = new Poco::Net::HTTPServerParams;
        params->setMaxThreads(8);
        params->setKeepAlive(true);
        m_server = std::make_unique<Poco::Net::HTTPServer>(new Factory(*this), m_socket, params);
        m_server->start();
    }
    ~OtlpSink() {
        m_stop.set();
        m_server->stopAll(true);
    }
    std::string endpoint() const {
        return "http://127.0.0.1:" + std::to_string(m_socket.address().port());
    }
    std::size_t requests() const { return m_requests.load(); }

    /// The first `n` requests are refused with `status` and, unless empty, a Retry-After
    /// header of `retry_after` (made per request by the function).
    void refuse_first(int n, int status, std::function<std::string()> retry_after) {
        const std::lock_guard<std::mutex> lock(m_mutex);
        m_refuse_left = n;
        m_refuse_status = status;
        m_retry_after = std::move(retry_after);
    }
    /// When each request arrived (before its body was read).
    std::vector<std::chrono::steady_clock::time_point> arrivals() {
        const std::lock_guard<std::mutex> lock(m_mutex);
        return m_arrivals;
    }

    /// Waits until `pred(spans, logs)` holds (checked on each arrival) or `timeout` passes.
    bool wait_for(
        const std::function<bool(const std::vector<SpanRec>&, const std::vector<LogRec>&)>& pred,
        std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
        std::unique_lock<std::mutex> lock(m_mutex);
        return m_cv.wait_for(lock, timeout, [&] { return pred(m_spans, m_logs); });
    }
    std::vector<SpanRec> spans() {
        const std::lock_guard<std::mutex> lock(m_mutex);
        return m_spans;
    }
    std::vector<LogRec> logs() {
        const std::lock_guard<std::mutex> lock(m_mutex);
        return m_logs;
    }

private:
    class Handler final : public Poco::Net::HTTPRequestHandler {
    public:
        explicit Handler(OtlpSink& sink) : m_sink(sink) {}
        void handleRequest(Poco::Net::HTTPServerRequest& req,
                           Poco::Net::HTTPServerResponse& resp) override {
            int refuse = 0;
            std::string retry_after;
            {
                const std::lock_guard<std::mutex> lock(m_sink.m_mutex);
                m_sink.m_arrivals.push_back(std::chrono::steady_clock::now());
                if (m_sink.m_refuse_left > 0) {
                    --m_sink.m_refuse_left;
                    refuse = m_sink.m_refuse_status;
                    retry_after = m_sink.m_retry_after ? m_sink.m_retry_after() : std::string();
                }
            }
            m_sink.m_cv.notify_all();
            std::string body;
            Poco::StreamCopier::copyToString(req.stream(), body);
            m_sink.m_requests.fetch_add(1);
            if (refuse != 0) {
                resp.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(refuse));
                if (!retry_after.empty()) {
                    resp.set("Retry-After", retry_after);
                }
                resp.sendBuffer("", 0);
                return;
            }
            if (m_sink.m_mode == SinkMode::fail_503) {
                resp.setStatus(Poco::Net::HTTPResponse::HTTP_SERVICE_UNAVAILABLE);
                resp.sendBuffer("", 0);
                return;
            }
            if (m_sink.m_mode == SinkMode::slow) {
                m_sink.m_stop.tryWait(static_cast<long>(m_sink.m_slow.count()));
            }
            const bool traces = req.getURI() == "/v1/traces";
            const bool logs = req.getURI() == "/v1/logs";
            if ((!traces && !logs) || req.getContentType() != "application/x-protobuf") {
                resp.setStatus(Poco::Net::HTTPResponse::HTTP_BAD_REQUEST);
                resp.sendBuffer("", 0);
                return;
            }
            std::string answer;
            if (traces) {
                otlp::collector::trace::v1::ExportTraceServiceRequest request;
                if (!request.ParseFromString(body)) {
                    resp.setStatus(Poco::Net::HTTPResponse::HTTP_BAD_REQUEST);
                    resp.sendBuffer("", 0);
                    return;
                }
                m_sink.add(request);
                otlp::collector::trace::v1::ExportTraceServiceResponse().SerializeToString(&answer);
            } else {
                otlp::collector::logs::v1::ExportLogsServiceRequest request;
                if (!request.ParseFromString(body)) {
                    resp.setStatus(Poco::Net::HTTPResponse::HTTP_BAD_REQUEST);
                    resp.sendBuffer("", 0);
                    return;
                }
                m_sink.add(request);
                otlp::collector::logs::v1::ExportLogsServiceResponse().SerializeToString(&answer);
            }
            resp.setContentType("application/x-protobuf");
            resp.sendBuffer(answer.data(), answer.size());
        }

    private:
        OtlpSink& m_sink;
    };
    class Factory final : public Poco::Net::HTTPRequestHandlerFactory {
    public:
        explicit Factory(OtlpSink& sink) : m_sink(sink) {}
        Poco::Net::HTTPRequestHandler*
        createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
            return new Handler(m_sink);
        }

    private:
        OtlpSink& m_sink;
    };

    void add(const otlp::collector::trace::v1::ExportTraceServiceRequest& request) {
        {
            const std::lock_guard<std::mutex> lock(m_mutex);
            for (const auto& rs : request.resource_spans()) {
                const auto resource = attributes(rs.resource().attributes());
                for (const auto& ss : rs.scope_spans()) {
                    for (const auto& s : ss.spans()) {
                        SpanRec r;
                        r.trace_id = to_hex(s.trace_id());
                        r.span_id = to_hex(s.span_id());
                        r.parent_span_id = to_hex(s.parent_span_id());
                        r.name = s.name();
                        r.trace_state = s.trace_state();
                        r.kind = static_cast<int>(s.kind());
                        r.status = static_cast<int>(s.status().code());
                        r.status_message = s.status().message();
                        r.scope_name = ss.scope().name();
                        r.scope_version = ss.scope().version();
                        for (const auto& e : s.events()) {
                            r.events.push_back(
                                {e.name(), e.time_unix_nano(), attributes(e.attributes())});
                        }
                        for (const auto& l : s.links()) {
                            r.links.push_back({to_hex(l.trace_id()), to_hex(l.span_id()),
                                               l.trace_state(), l.flags(),
                                               attributes(l.attributes())});
                        }
                        r.flags = s.flags();
                        r.start_ns = s.start_time_unix_nano();
                        r.end_ns = s.end_time_unix_nano();
                        r.attrs = attributes(s.attributes());
                        r.resource = resource;
                        m_spans.push_back(std::move(r));
                    }
                }
            }
        }
        m_cv.notify_all();
    }
    void add(const otlp::collector::logs::v1::ExportLogsServiceRequest& request) {
        {
            const std::lock_guard<std::mutex> lock(m_mutex);
            for (const auto& rl : request.resource_logs()) {
                const auto resource = attributes(rl.resource().attributes());
                for (const auto& sl : rl.scope_logs()) {
                    for (const auto& l : sl.log_records()) {
                        LogRec r;
                        r.trace_id = to_hex(l.trace_id());
                        r.span_id = to_hex(l.span_id());
                        r.body = any_to_string(l.body());
                        r.severity_text = l.severity_text();
                        r.severity_number = static_cast<int>(l.severity_number());
                        r.event_name = l.event_name();
                        r.scope_name = sl.scope().name();
                        r.flags = l.flags();
                        r.time_ns = l.time_unix_nano();
                        r.observed_ns = l.observed_time_unix_nano();
                        r.attrs = attributes(l.attributes());
                        r.resource = resource;
                        m_logs.push_back(std::move(r));
                    }
                }
            }
        }
        m_cv.notify_all();
    }

    SinkMode m_mode;
    std::chrono::milliseconds m_slow;
    Poco::Event m_stop{Poco::Event::EVENT_MANUALRESET};
    Poco::Net::ServerSocket m_socket;
    std::unique_ptr<Poco::Net::HTTPServer> m_server;
    std::atomic<std::size_t> m_requests{0};
    std::mutex m_mutex;
    std::condition_variable m_cv;
    std::vector<SpanRec> m_spans;
    std::vector<LogRec> m_logs;
    int m_refuse_left = 0;
    int m_refuse_status = 0;
    std::function<std::string()> m_retry_after;
    std::vector<std::chrono::steady_clock::time_point> m_arrivals;

public:
    /// Waits until at least `n` requests arrived (or `timeout` passed).
    bool wait_arrivals(std::size_t n, std::chrono::milliseconds timeout) {
        std::unique_lock<std::mutex> lock(m_mutex);
        return m_cv.wait_for(lock, timeout, [&] { return m_arrivals.size() >= n; });
    }
};

/// `pipeline`: "wire" (the default: the API's spans and log records encoded by the service
/// itself) or "sdk" (the opentelemetry-cpp SDK's tracer, logger and OTLP exporters).
std::map<std::string, std::string> otel_env(const std::string& endpoint,
                                            const std::string& pipeline = "wire") {
    std::map<std::string, std::string> env = {
        {"OTEL_SDK_DISABLED", "false"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT", endpoint},
        {"OTEL_BSP_SCHEDULE_DELAY", "200"},
        {"OTEL_SERVICE_NAME", "task-api-test"},
        {"OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=contract,team=lab"}};
    if (pipeline == "sdk") {
        env["LABCTL_TASKAPI_SDK_EXPORTERS"] = "1";
    }
    return env;
}

// Span.flags: W3C trace flags in bits 0-7, bit 8 "is-remote known", bit 9 "parent is remote".
constexpr std::uint32_t k_sampled = 0x01;
constexpr std::uint32_t k_has_is_remote = 0x100;
constexpr std::uint32_t k_is_remote = 0x200;

constexpr int k_server = static_cast<int>(otlp::trace::v1::Span::SPAN_KIND_SERVER);
constexpr int k_client = static_cast<int>(otlp::trace::v1::Span::SPAN_KIND_CLIENT);
constexpr int k_status_error = static_cast<int>(otlp::trace::v1::Status::STATUS_CODE_ERROR);

const SpanRec* find_span(const std::vector<SpanRec>& spans,
                         const std::function<bool(const SpanRec&)>& pred) {
    const auto it = std::find_if(spans.begin(), spans.end(), pred);
    return it == spans.end() ? nullptr : &*it;
}

} // namespace

TEST_CASE("taskapi otlp: traceparent is continued and DB CLIENT spans and logs share the trace "
          "(wire and SDK pipelines)",
          "[taskapi][otlp]") {
    const std::string pipeline = GENERATE(as<std::string>{}, "wire", "sdk");
    INFO("pipeline: " << pipeline);
    OtlpSink sink(SinkMode::ok);
    TempDir dir;
    ApiProcess api(dir.path() / "tasks.db", dir.path() / "api.log",
                   otel_env(sink.endpoint(), pipeline));
    const auto port = api.port();

    const std::string trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    const std::string parent_id = "00f067aa0ba902b7";
    const std::map<std::string, std::string> headers = {
        {"traceparent", "00-" + trace_id + "-" + parent_id + "-01"},
        {"tracestate", "vendor=lab"},
        {"User-Agent", "labctl-contract/1.0"}};
    const auto created =
        http(port, "POST", "/api/tasks", R"({"title":"traced"})", "application/json", headers);
    REQUIRE(created.status == 201);
    const long id = created.json()["id"].get<long>();

    const auto has_server_and_client = [&](const std::vector<SpanRec>& spans,
                                           const std::vector<LogRec>& logs) {
        const SpanRec* server = find_span(
            spans, [&](const SpanRec& s) { return s.trace_id == trace_id && s.kind == k_server; });
        if (server == nullptr) {
            return false;
        }
        const bool client = find_span(spans, [&](const SpanRec& s) {
                                return s.parent_span_id == server->span_id;
                            }) != nullptr;
        const bool log = std::any_of(logs.begin(), logs.end(), [&](const LogRec& l) {
            return l.trace_id == trace_id && l.span_id == server->span_id;
        });
        return client && log;
    };
    REQUIRE(sink.wait_for(has_server_and_client));

    const auto spans = sink.spans();
    const SpanRec* server = find_span(
        spans, [&](const SpanRec& s) { return s.trace_id == trace_id && s.kind == k_server; });
    REQUIRE(server != nullptr);
    CHECK(server->name == "POST /api/tasks");
    CHECK(server->parent_span_id == parent_id);
    CHECK(server->trace_state == "vendor=lab");
    CHECK(server->status != k_status_error);
    CHECK((server->flags & 0xFF) == k_sampled);
    if ((server->flags & k_has_is_remote) != 0) {
        CHECK((server->flags & k_is_remote) != 0); // its parent came in the traceparent
    }
    CHECK(server->start_ns > 1'700'000'000'000'000'000ULL); // a real Unix time in ns
    CHECK(server->end_ns >= server->start_ns);
    const Attributes expected = {{"http.request.method", "POST"},
                                 {"http.route", "/api/tasks"},
                                 {"url.path", "/api/tasks"},
                                 {"url.scheme", "http"},
                                 {"http.response.status_code", "201"},
                                 {"server.address", "127.0.0.1"},
                                 {"server.port", std::to_string(port)},
                                 {"user_agent.original", "labctl-contract/1.0"}};
    for (const auto& [k, v] : expected) {
        INFO(k);
        REQUIRE(server->attrs.count(k) == 1);
        CHECK(server->attrs.at(k) == v);
    }
    CHECK(server->resource.at("service.name") == "task-api-test");
    CHECK(server->resource.at("deployment.environment") == "contract");
    CHECK(server->resource.at("team") == "lab");
    CHECK_FALSE(server->resource.at("service.version").empty());

    const SpanRec* insert =
        find_span(spans, [&](const SpanRec& s) { return s.parent_span_id == server->span_id; });
    REQUIRE(insert != nullptr);
    CHECK(insert->trace_id == trace_id);
    CHECK(insert->kind == k_client);
    CHECK((insert->flags & k_is_remote) == 0); // its parent is the local SERVER span
    CHECK(insert->start_ns >= server->start_ns);
    CHECK(insert->end_ns <= server->end_ns);
    CHECK(insert->name == "INSERT tasks");
    CHECK(insert->attrs.at("db.system.name") == "sqlite");
    CHECK(insert->attrs.at("db.operation.name") == "INSERT");
    CHECK(insert->attrs.at("db.collection.name") == "tasks");
    const std::string query = insert->attrs.at("db.query.text");
    CHECK(query.find("INSERT INTO tasks") == 0);
    CHECK(query.find('?') != std::string::npos);
    CHECK(query.find("traced") == std::string::npos); // parameterised: no values in the text

    const auto logs = sink.logs();
    const auto log = std::find_if(logs.begin(), logs.end(), [&](const LogRec& l) {
        return l.trace_id == trace_id && l.span_id == server->span_id;
    });
    REQUIRE(log != logs.end());
    CHECK(log->body == "request completed");
    CHECK(log->severity_number == 9); // SEVERITY_NUMBER_INFO
    CHECK(log->severity_text == "INFO");
    CHECK((log->flags & 0xFF) == k_sampled);
    CHECK(log->time_ns > 1'700'000'000'000'000'000ULL);
    CHECK(log->observed_ns > 1'700'000'000'000'000'000ULL);
    CHECK(log->attrs.at("route") == "/api/tasks");
    CHECK(log->attrs.at("status_code") == "201");
    CHECK(log->resource.at("service.name") == "task-api-test");
    // The same record on stdout as a JSON line with the same ids.
    const std::string out = api.log_text();
    CHECK(out.find("\"trace_id\":\"" + trace_id + "\",\"span_id\":\"" + server->span_id + "\"") !=
          std::string::npos);

    // GET by id: SERVER span with the templated route and a SELECT child.
    const std::string trace2 = "0af7651916cd43dd8448eb211c80319c";
    REQUIRE(http(port, "GET", "/api/tasks/" + std::to_string(id), {}, {},
                 {{"traceparent", "00-" + trace2 + "-b7ad6b7169203331-01"}})
                .status == 200);
    REQUIRE(sink.wait_for([&](const std::vector<SpanRec>& s, const std::vector<LogRec>&) {
        const SpanRec* srv = find_span(
            s, [&](const SpanRec& x) { return x.trace_id == trace2 && x.kind == k_server; });
        return srv != nullptr && find_span(s, [&](const SpanRec& x) {
                                     return x.parent_span_id == srv->span_id &&
                                            x.name == "SELECT tasks";
                                 }) != nullptr;
    }));
    const auto spans2 = sink.spans();
    const SpanRec* get = find_span(
        spans2, [&](const SpanRec& x) { return x.trace_id == trace2 && x.kind == k_server; });
    CHECK(get->name == "GET /api/tasks/{id}");
    CHECK(get->attrs.at("http.route") == "/api/tasks/{id}");
    CHECK(get->attrs.at("url.path") == "/api/tasks/" + std::to_string(id));

    // 5xx → span status ERROR; 4xx → not an error on a SERVER span.
    const std::string trace3 = "11111111111111111111111111111111";
    const std::string trace4 = "22222222222222222222222222222222";
    REQUIRE(http(port, "GET", "/api/simulate-error", {}, {},
                 {{"traceparent", "00-" + trace3 + "-1111111111111111-01"}})
                .status == 500);
    REQUIRE(http(port, "GET", "/api/tasks/999999", {}, {},
                 {{"traceparent", "00-" + trace4 + "-2222222222222222-01"}})
                .status == 404);
    REQUIRE(sink.wait_for([&](const std::vector<SpanRec>& s, const std::vector<LogRec>&) {
        return find_span(s, [&](const SpanRec& x) { return x.trace_id == trace3; }) != nullptr &&
               find_span(s, [&](const SpanRec& x) {
                   return x.trace_id == trace4 && x.kind == k_server;
               }) != nullptr;
    }));
    const auto spans3 = sink.spans();
    CHECK(find_span(spans3, [&](const SpanRec& x) { return x.trace_id == trace3; })->status ==
          k_status_error);
    CHECK(find_span(spans3, [&](const SpanRec& x) {
              return x.trace_id == trace4 && x.kind == k_server;
          })->status != k_status_error);

    REQUIRE(api.terminate() == 0);
}

TEST_CASE("taskapi otlp: an invalid traceparent starts a new trace", "[taskapi][otlp]") {
    OtlpSink sink(SinkMode::ok);
    TempDir dir;
    ApiProcess api(dir.path() / "tasks.db", dir.path() / "api.log", otel_env(sink.endpoint()));

    const std::vector<std::string> invalid = {
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01", // all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", // all-zero parent id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", // forbidden version
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", // upper-case hex
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  // short trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",    // no flags
        "garbage",
        "",
    };
    for (std::size_t i = 0; i < invalid.size(); ++i) {
        const auto r =
            http(api.port(), "GET", "/api/tasks", {}, {},
                 {{"traceparent", invalid[i]}, {"User-Agent", "case-" + std::to_string(i)}});
        REQUIRE(r.status == 200);
    }
    REQUIRE(sink.wait_for([&](const std::vector<SpanRec>& spans, const std::vector<LogRec>&) {
        return std::count_if(spans.begin(), spans.end(), [](const SpanRec& s) {
                   return s.kind == k_server;
               }) >= static_cast<long>(invalid.size());
    }));
    const auto spans = sink.spans();
    for (std::size_t i = 0; i < invalid.size(); ++i) {
        INFO("traceparent '" << invalid[i] << "'");
        const SpanRec* s = find_span(spans, [&](const SpanRec& x) {
            return x.kind == k_server && x.attrs.count("user_agent.original") == 1 &&
                   x.attrs.at("user_agent.original") == "case-" + std::to_string(i);
        });
        REQUIRE(s != nullptr);
        CHECK(s->parent_span_id.empty());
        CHECK(s->trace_id.size() == 32);
        CHECK(s->trace_id != "4bf92f3577b34da6a3ce929d0e0e4736");
        CHECK(s->trace_id != std::string(32, '0'));
    }
}

TEST_CASE("taskapi otlp: a caller's not-sampled decision is kept: no spans, logs keep the ids "
          "(wire and SDK pipelines)",
          "[taskapi][otlp]") {
    const std::string pipeline = GENERATE(as<std::string>{}, "wire", "sdk");
    INFO("pipeline: " << pipeline);
    OtlpSink sink(SinkMode::ok);
    TempDir dir;
    ApiProcess api(dir.path() / "tasks.db", dir.path() / "api.log",
                   otel_env(sink.endpoint(), pipeline));
    const std::string unsampled = "5bf92f3577b34da6a3ce929d0e0e4736";
    const std::string sampled = "6bf92f3577b34da6a3ce929d0e0e4736";
    REQUIRE(http(api.port(), "POST", "/api/tasks", R"({"title":"not sampled"})", "application/json",
                 {{"traceparent", "00-" + unsampled + "-00f067aa0ba902b7-00"}})
                .status == 201);
    // A sampled request after it: once its spans and log have arrived, so would have the
    // unsampled request's (same pipeline, earlier), had there been any.
    REQUIRE(http(api.port(), "POST", "/api/tasks", R"({"title":"sampled"})", "application/json",
                 {{"traceparent", "00-" + sampled + "-00f067aa0ba902b7-01"}})
                .status == 201);
    REQUIRE(sink.wait_for([&](const std::vector<SpanRec>& spans, const std::vector<LogRec>& logs) {
        const bool server = find_span(spans, [&](const SpanRec& s) {
                                return s.trace_id == sampled && s.kind == k_server;
                            }) != nullptr;
        const bool client = find_span(spans, [&](const SpanRec& s) {
                                return s.trace_id == sampled && s.kind == k_client;
                            }) != nullptr;
        const auto log_of = [&](const std::string& trace) {
            return std::any_of(logs.begin(), logs.end(),
                               [&](const LogRec& l) { return l.trace_id == trace; });
        };
        return server && client && log_of(sampled) && log_of(unsampled);
    }));
    const auto spans = sink.spans();
    CHECK(find_span(spans, [&](const SpanRec& s) { return s.trace_id == unsampled; }) == nullptr);
    // The request's log record still names the trace (and says it is not sampled).
    const auto logs = sink.logs();
    const auto log = std::find_if(logs.begin(), logs.end(), [&](const LogRec& l) {
        return l.trace_id == unsampled && l.body == "request completed";
    });
    REQUIRE(log != logs.end());
    CHECK((log->flags & k_sampled) == 0);
    CHECK(log->span_id.size() == 16);
    REQUIRE(api.terminate() == 0);
}

namespace {

struct LatencyReport {
    int failures = 0;
    double max_s = 0;
    double median_s = 0;
};

/// `n` sequential requests (POST, GET list, GET one), checking each status.
LatencyReport drive(std::uint16_t port, int n) {
    LatencyReport rep;
    std::vector<double> lat;
    for (int i = 0; i < n; ++i) {
        HttpResult r;
        int expected = 200;
        switch (i % 3) {
        case 0:
            r = http(port, "POST", "/api/tasks", R"({"title":"t"})", "application/json");
            expected = 201;
            break;
        case 1:
            r = http(port, "GET", "/api/tasks");
            break;
        default:
            r = http(port, "GET", "/api/tasks/1");
            break;
        }
        if (r.status != expected) {
            ++rep.failures;
        }
        lat.push_back(r.seconds);
    }
    std::sort(lat.begin(), lat.end());
    rep.max_s = lat.back();
    rep.median_s = lat[lat.size() / 2];
    return rep;
}

double metric(std::uint16_t port, const std::string& name, const std::string& matcher) {
    return metric_sum(http(port, "GET", "/metrics").body, name, {matcher});
}

/// Polls a metric until it is > 0 (or the deadline passes) and returns it.
double eventually_positive(std::uint16_t port, const std::string& name, const std::string& matcher,
                           std::chrono::seconds limit = std::chrono::seconds(15)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    double v = 0;
    while ((v = metric(port, name, matcher)) <= 0 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return v;
}

void check_shutdown_is_prompt(ApiProcess& api) {
    const auto start = std::chrono::steady_clock::now();
    const auto code = api.terminate(std::chrono::seconds(12));
    const double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    INFO(api.log_text().substr(0, 4000));
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    CHECK(took < 10.0);
}

} // namespace

TEST_CASE("taskapi otlp: collector down never fails or slows a request (wire and SDK pipelines)",
          "[taskapi][otlp]") {
    const std::string pipeline = GENERATE(as<std::string>{}, "wire", "sdk");
    INFO("pipeline: " << pipeline);
    TempDir dir;
    const std::uint16_t closed = free_port(); // nothing listens there
    auto env = otel_env("http://127.0.0.1:" + std::to_string(closed), pipeline);
    ApiProcess api(dir.path() / "tasks.db", dir.path() / "api.log", env);
    const auto rep = drive(api.port(), 150);
    CHECK(rep.failures == 0);
    CHECK(rep.median_s < 0.1);
    CHECK(rep.max_s < 1.5); // retries with backoff in the request path would take longer
    // The exporter did try, and says so in a metric (not in the request path).
    CHECK(eventually_positive(api.port(), "otel_export_failed_batches_total",
                              R"(signal="traces")") > 0);
    check_shutdown_is_prompt(api);
}

TEST_CASE("taskapi otlp: collector answering 503 never fails or slows a request (wire and SDK "
          "pipelines)",
          "[taskapi][otlp]") {
    const std::string pipeline = GENERATE(as<std::string>{}, "wire", "sdk");
    INFO("pipeline: " << pipeline);
    OtlpSink sink(SinkMode::fail_503);
    TempDir dir;
    ApiProcess api(dir.path() / "tasks.db", dir.path() / "api.log",
                   otel_env(sink.endpoint(), pipeline));
    const auto rep = drive(api.port(), 150);
    CHECK(rep.failures == 0);
    CHECK(rep.median_s < 0.1);
    CHECK(rep.max_s < 1.5); // retries with backoff in the request path would take longer
    CHECK(eventually_positive(api.port(), "otel_export_failed_batches_total",
                              R"(signal="traces")") > 0);
    CHECK(sink.requests() > 0);
    check_shutdown_is_prompt(api);
}

TEST_CASE("taskapi otlp: a slow collector fills the bounded queue and drops are counted (wire "
          "and SDK pipelines)",
          "[taskapi][otlp]") {
    const std::string pipeline = GENERATE(as<std::string>{}, "wire", "sdk");
    INFO("pipeline: " << pipeline);
    OtlpSink sink(SinkMode::slow, std::chrono::seconds(6));
    TempDir dir;
    auto env = otel_env(sink.endpoint(), pipeline);
    env["OTEL_EXPORTER_OTLP_TIMEOUT"] = "3000";
    env["OTEL_BSP_MAX_QUEUE_SIZE"] = "20";
    ApiProcess api(dir.path() / "tasks.db", dir.path() / "api.log", env);
    const auto rep = drive(api.port(), 240);
    CHECK(rep.failures == 0);
    CHECK(rep.median_s < 0.1);
    CHECK(rep.max_s < 1.5); // an export blocking a request would take ≥ the 3 s export timeout
    CHECK(eventually_positive(api.port(), "otel_export_dropped_total", R"(signal="traces")") > 0);
    CHECK(metric(api.port(), "otel_export_dropped_total", R"(signal="logs")") > 0);
    check_shutdown_is_prompt(api);
}

// The wire pipeline's encoder, in process: the service itself only sets strings and integers, so
// the other attribute types, events, links, renames and log-record fields are driven here
// through the OpenTelemetry API and decoded by the same protobuf sink.
TEST_CASE("taskapi otlp: the wire tracer and logger encode every attribute type, events, links, "
          "renames, status and log fields (in process)",
          "[taskapi][otlp]") {
    namespace api = opentelemetry;
    using labctl::taskapi::Config;
    using labctl::taskapi::Metrics;
    using labctl::taskapi::WireLogger;
    using labctl::taskapi::WireTracer;
    OtlpSink sink(SinkMode::ok);
    Config config;
    config.otlp_traces_endpoint = sink.endpoint() + "/v1/traces";
    config.otlp_logs_endpoint = sink.endpoint() + "/v1/logs";
    config.export_delay = std::chrono::milliseconds(50);
    config.service_version = "9.9.9";
    Metrics metrics;
    const auto resource = api::sdk::resource::Resource::Create(
        {{"service.name", std::string("wire-test")}, {"answer", std::int64_t{42}}});
    const auto tracer = WireTracer::create(config, resource, metrics);
    const auto logger = WireLogger::create(config, resource, metrics);
    REQUIRE(tracer);
    REQUIRE(logger);

    const std::array<bool, 2> bools = {true, false};
    const std::array<std::int64_t, 3> ints = {1, -2, 3};
    const std::array<double, 2> doubles = {0.5, 2.25};
    const std::array<api::nostd::string_view, 2> texts = {"a", "b c"};
    const std::array<std::uint8_t, 3> bytes = {0x00, 0x7f, 0xff};
    const std::string long_text(300, 'x'); // a length that needs a two-byte varint
    std::vector<std::pair<api::nostd::string_view, api::common::AttributeValue>> attrs = {
        {"bool", true},
        {"int32", std::int32_t{-7}},
        {"int64", std::int64_t{1} << 40},
        {"uint32", std::uint32_t{4000000000U}},
        {"double", 1.5},
        {"cstr", "plain"},
        {"unicode", api::nostd::string_view("Übersicht ✓")},
        {"long", api::nostd::string_view(long_text)},
        {"bools", api::nostd::span<const bool>(bools.data(), bools.size())},
        {"ints", api::nostd::span<const std::int64_t>(ints.data(), ints.size())},
        {"doubles", api::nostd::span<const double>(doubles.data(), doubles.size())},
        {"texts", api::nostd::span<const api::nostd::string_view>(texts.data(), texts.size())},
        {"bytes", api::nostd::span<const std::uint8_t>(bytes.data(), bytes.size())},
    };
    const std::string linked_trace = "0102030405060708090a0b0c0d0e0f10";
    const std::array<std::uint8_t, 16> linked_trace_bytes = {1, 2,  3,  4,  5,  6,  7,  8,
                                                             9, 10, 11, 12, 13, 14, 15, 16};
    const std::array<std::uint8_t, 8> linked_span_bytes = {0xaa, 0xbb, 0xcc, 0xdd,
                                                           0xee, 0xff, 0x00, 0x11};
    const api::trace::SpanContext linked(
        api::trace::TraceId(api::nostd::span<const std::uint8_t, 16>(linked_trace_bytes)),
        api::trace::SpanId(api::nostd::span<const std::uint8_t, 8>(linked_span_bytes)),
        api::trace::TraceFlags(api::trace::TraceFlags::kIsSampled), true);
    const std::vector<
        std::pair<api::trace::SpanContext,
                  std::vector<std::pair<api::nostd::string_view, api::common::AttributeValue>>>>
        links = {{linked, {{"link.kind", "follows"}}}};

    api::trace::StartSpanOptions options;
    options.kind = api::trace::SpanKind::kProducer;
    auto span = tracer->StartSpan("first name", attrs, links, options);
    const auto context = span->GetContext();
    REQUIRE(context.IsValid());
    span->AddEvent("checkpoint", {{"step", std::int64_t{2}}});
    span->SetAttribute("late", "set after start");
    span->UpdateName("renamed");
    span->SetStatus(api::trace::StatusCode::kError, "it broke");

    api::trace::StartSpanOptions child_options;
    child_options.parent = context;
    auto child = tracer->StartSpan("child", child_options);
    child->End();
    span->End();
    span->SetAttribute("after.end", true); // ignored: the span is sent

    auto record = logger->CreateLogRecord();
    REQUIRE(record);
    record->SetSeverity(api::logs::Severity::kWarn2);
    record->SetBody(api::nostd::string_view("something happened"));
    record->SetTimestamp(std::chrono::system_clock::now());
    record->SetEventId(7, "lab.event");
    record->SetTraceId(context.trace_id());
    record->SetSpanId(context.span_id());
    record->SetTraceFlags(context.trace_flags());
    record->SetAttribute("ratio", 0.25);
    record->SetAttribute("ok", false);
    logger->EmitLogRecord(std::move(record));

    REQUIRE(tracer->flush(std::chrono::seconds(5)));
    REQUIRE(logger->flush(std::chrono::seconds(5)));
    char trace_hex[32];
    context.trace_id().ToLowerBase16(trace_hex);
    const std::string trace_id(trace_hex, 32);
    REQUIRE(sink.wait_for([&](const std::vector<SpanRec>& spans, const std::vector<LogRec>& logs) {
        return spans.size() >= 2 && !logs.empty();
    }));

    const auto spans = sink.spans();
    const SpanRec* s = find_span(spans, [&](const SpanRec& x) { return x.parent_span_id.empty(); });
    REQUIRE(s != nullptr);
    CHECK(s->trace_id == trace_id);
    CHECK(s->name == "renamed");
    CHECK(s->kind == static_cast<int>(otlp::trace::v1::Span::SPAN_KIND_PRODUCER));
    CHECK(s->status == k_status_error);
    CHECK(s->status_message == "it broke");
    CHECK(s->scope_name == "labctl-taskapi");
    CHECK(s->scope_version == "9.9.9");
    CHECK(s->resource.at("service.name") == "wire-test");
    CHECK(s->resource.at("answer") == "42");
    const Attributes expected = {
        {"bool", "true"},
        {"int32", "-7"},
        {"int64", std::to_string(std::int64_t{1} << 40)},
        {"uint32", "4000000000"},
        {"double", std::to_string(1.5)},
        {"cstr", "plain"},
        {"unicode", "Übersicht ✓"},
        {"long", long_text},
        {"bools", "[true,false]"},
        {"ints", "[1,-2,3]"},
        {"doubles", "[" + std::to_string(0.5) + "," + std::to_string(2.25) + "]"},
        {"texts", "[a,b c]"},
        {"bytes", "bytes:007fff"},
        {"late", "set after start"},
    };
    CHECK(s->attrs == expected); // and nothing else: "after.end" came too late
    REQUIRE(s->events.size() == 1);
    CHECK(s->events[0].name == "checkpoint");
    CHECK(s->events[0].attrs.at("step") == "2");
    CHECK(s->events[0].time_ns >= s->start_ns);
    REQUIRE(s->links.size() == 1);
    CHECK(s->links[0].trace_id == linked_trace);
    CHECK(s->links[0].span_id == "aabbccddeeff0011");
    CHECK(s->links[0].attrs.at("link.kind") == "follows");
    CHECK((s->links[0].flags & (k_has_is_remote | k_is_remote)) == (k_has_is_remote | k_is_remote));
    CHECK(s->end_ns >= s->start_ns);

    const SpanRec* c = find_span(spans, [&](const SpanRec& x) { return x.name == "child"; });
    REQUIRE(c != nullptr);
    CHECK(c->trace_id == trace_id);
    CHECK(c->parent_span_id == s->span_id);
    CHECK(c->kind == static_cast<int>(otlp::trace::v1::Span::SPAN_KIND_INTERNAL));
    CHECK((c->flags & (k_has_is_remote | k_is_remote)) == k_has_is_remote);

    const auto logs = sink.logs();
    REQUIRE(logs.size() == 1);
    const LogRec& l = logs[0];
    CHECK(l.body == "something happened");
    CHECK(l.severity_number == 14); // SEVERITY_NUMBER_WARN2
    CHECK(l.severity_text == "WARN2");
    CHECK(l.event_name == "lab.event");
    CHECK(l.trace_id == trace_id);
    CHECK(l.span_id == s->span_id);
    CHECK((l.flags & 0xFF) == k_sampled);
    CHECK(l.scope_name == "labctl-taskapi");
    CHECK(l.attrs.at("ratio") == std::to_string(0.25));
    CHECK(l.attrs.at("ok") == "false");
    CHECK(l.resource.at("service.name") == "wire-test");
    CHECK(l.time_ns > 1'700'000'000'000'000'000ULL);
    CHECK(l.observed_ns > 1'700'000'000'000'000'000ULL);

    tracer->shutdown(std::chrono::seconds(1));
    logger->shutdown(std::chrono::seconds(1));
    // After shutdown nothing is queued any more; ending a span is harmless.
    tracer->StartSpan("late")->End();
}

// GCC inlines the replacement operator delete below into callers of new and then sees free()
// of memory from "new": it is malloc'ed memory, by the replacement operator new.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

// Allocation failure on demand in this test binary, for the calling thread only: after
// t_allocations_left successful allocations the next one throws std::bad_alloc, later ones
// succeed again (negative: none fails).
namespace {
thread_local long t_allocations_left = -1;
} // namespace

void* operator new(std::size_t size) {
    if (t_allocations_left == 0) {
        t_allocations_left = -1;
        throw std::bad_alloc();
    }
    if (t_allocations_left > 0) {
        --t_allocations_left;
    }
    if (void* p = std::malloc(size == 0 ? 1 : size)) {
        return p;
    }
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}

namespace {

struct WireFixture {
    explicit WireFixture(OtlpSink& sink) {
        config.otlp_traces_endpoint = sink.endpoint() + "/v1/traces";
        config.otlp_logs_endpoint = sink.endpoint() + "/v1/logs";
        config.export_delay = std::chrono::milliseconds(50);
        config.otlp_timeout = std::chrono::milliseconds(3000);
        tracer = labctl::taskapi::WireTracer::create(config, resource, metrics);
        logger = labctl::taskapi::WireLogger::create(config, resource, metrics);
    }
    double counter(const std::string& name, const std::string& signal) const {
        return metric_sum(metrics.serialize(), name, {"signal=\"" + signal + "\""});
    }
    labctl::taskapi::Config config;
    labctl::taskapi::Metrics metrics;
    opentelemetry::sdk::resource::Resource resource =
        opentelemetry::sdk::resource::Resource::Create({{"service.name", std::string("wire")}});
    std::shared_ptr<labctl::taskapi::WireTracer> tracer;
    std::shared_ptr<labctl::taskapi::WireLogger> logger;
};

double seconds_between(std::chrono::steady_clock::time_point a,
                       std::chrono::steady_clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

/// An IMF-fixdate `ahead` from now, rounded up to the next whole second.
std::string http_date_in(std::chrono::seconds ahead) {
    const auto now = std::chrono::system_clock::now();
    const std::time_t t =
        std::chrono::system_clock::to_time_t(std::chrono::ceil<std::chrono::seconds>(now) + ahead);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    const std::size_t n = std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return std::string(buf, n);
}

} // namespace

TEST_CASE("taskapi otlp: Retry-After is parsed as seconds or an HTTP-date",
          "[taskapi][otlp][unit]") {
    using labctl::taskapi::parse_retry_after;
    using std::chrono::milliseconds;
    const auto now = std::chrono::system_clock::from_time_t(1'700'000'000); // 2023-11-14 22:13:20
    CHECK(parse_retry_after("3", now) == milliseconds(3000));
    CHECK(parse_retry_after(" 0 ", now) == milliseconds(0));
    CHECK(parse_retry_after("99999999999999999999", now) == milliseconds(86'400'000));
    CHECK(parse_retry_after("Tue, 14 Nov 2023 22:13:25 GMT", now) == milliseconds(5000));
    CHECK(parse_retry_after("Tuesday, 14-Nov-23 22:13:30 GMT", now) == milliseconds(10000));
    CHECK(parse_retry_after("Tue Nov 14 22:13:22 2023", now) == milliseconds(2000));
    CHECK(parse_retry_after("Tue, 14 Nov 2023 22:00:00 GMT", now) == milliseconds(0)); // past
    CHECK_FALSE(parse_retry_after("", now));
    CHECK_FALSE(parse_retry_after("-1", now));
    CHECK_FALSE(parse_retry_after("1.5", now));
    CHECK_FALSE(parse_retry_after("soon", now));
}

TEST_CASE("taskapi otlp: the wire pipeline waits the Retry-After of a 429 (seconds) before its "
          "retry",
          "[taskapi][otlp]") {
    OtlpSink sink(SinkMode::ok);
    sink.refuse_first(1, 429, [] { return std::string("3"); });
    WireFixture wire(sink);
    REQUIRE(wire.tracer);
    wire.tracer->StartSpan("retried")->End();
    REQUIRE(sink.wait_for([](const auto& spans, const auto&) { return !spans.empty(); },
                          std::chrono::seconds(25)));
    const auto arrivals = sink.arrivals();
    REQUIRE(arrivals.size() >= 2);
    const double gap = seconds_between(arrivals[0], arrivals[1]);
    INFO("retry after " << gap << " s");
    CHECK(gap >= 3.0); // the collector's value, not the 1 s default back-off
    CHECK(gap < 20.0); // far below the 30 s cap: a wait that is bounded
    CHECK(wire.counter("otel_export_failed_batches_total", "traces") == 0);
    wire.tracer->shutdown(std::chrono::seconds(1));
}

TEST_CASE("taskapi otlp: the wire pipeline waits the Retry-After of a 503 (HTTP-date) before its "
          "retry",
          "[taskapi][otlp]") {
    OtlpSink sink(SinkMode::ok);
    sink.refuse_first(1, 503, [] { return http_date_in(std::chrono::seconds(4)); });
    WireFixture wire(sink);
    REQUIRE(wire.tracer);
    wire.tracer->StartSpan("retried")->End();
    REQUIRE(sink.wait_for([](const auto& spans, const auto&) { return !spans.empty(); },
                          std::chrono::seconds(25)));
    const auto arrivals = sink.arrivals();
    REQUIRE(arrivals.size() >= 2);
    const double gap = seconds_between(arrivals[0], arrivals[1]);
    INFO("retry after " << gap << " s");
    CHECK(gap >= 3.0); // the date is at least 4 s ahead of the refusal's whole second
    CHECK(gap < 20.0);
    wire.tracer->shutdown(std::chrono::seconds(1));
}

TEST_CASE("taskapi otlp: a Retry-After beyond shutdown does not delay shutdown and the failed "
          "batch is counted where it failed",
          "[taskapi][otlp]") {
    OtlpSink sink(SinkMode::ok);
    sink.refuse_first(100, 429, [] { return std::string("3600"); });
    WireFixture wire(sink);
    REQUIRE(wire.tracer);
    wire.tracer->StartSpan("refused")->End();
    REQUIRE(sink.wait_arrivals(1, std::chrono::seconds(10)));
    std::this_thread::sleep_for(std::chrono::milliseconds(200)); // the exporter is waiting now
    const auto start = std::chrono::steady_clock::now();
    wire.tracer->shutdown(std::chrono::milliseconds(500));
    const double took = seconds_between(start, std::chrono::steady_clock::now());
    CHECK(took < 3.0); // the flush bound (0.5 s) plus stopping, never the hour asked for
    CHECK(sink.arrivals().size() == 1);
    // No log handler is installed in this process: the counter comes from the pipeline itself.
    CHECK(wire.counter("otel_export_failed_batches_total", "traces") == 1);
}

TEST_CASE("taskapi otlp: wire export failures are counted directly, not from log text (in "
          "process)",
          "[taskapi][otlp]") {
    OtlpSink sink(SinkMode::fail_503);
    WireFixture wire(sink);
    REQUIRE(wire.tracer);
    REQUIRE(wire.logger);
    wire.tracer->StartSpan("failing")->End();
    auto record = wire.logger->CreateLogRecord();
    REQUIRE(record);
    record->SetBody(opentelemetry::nostd::string_view("failing"));
    wire.logger->EmitLogRecord(std::move(record));
    // Two attempts per batch (one retry after 1 s): the flush returns once both failed.
    CHECK(wire.tracer->flush(std::chrono::seconds(10)));
    CHECK(wire.logger->flush(std::chrono::seconds(10)));
    CHECK(wire.counter("otel_export_failed_batches_total", "traces") == 1);
    CHECK(wire.counter("otel_export_failed_batches_total", "logs") == 1);
    wire.tracer->shutdown(std::chrono::seconds(1));
    wire.logger->shutdown(std::chrono::seconds(1));
}

TEST_CASE("taskapi otlp: a wire span that outlives its tracer ends safely and is counted as "
          "dropped",
          "[taskapi][otlp]") {
    OtlpSink sink(SinkMode::ok);
    WireFixture wire(sink);
    REQUIRE(wire.tracer);
    auto span = wire.tracer->StartSpan("outlives");
    span->SetAttribute("before", std::int64_t{1});
    // The only owner of the tracer lets go while the span is still recording.
    wire.tracer.reset();
    span->SetAttribute("after", std::string_view("tracer gone").data());
    span->End();
    span = nullptr; // the span's share of the pipeline goes last
    CHECK(wire.counter("otel_export_dropped_total", "traces") == 1);
    CHECK(sink.spans().empty());
}

TEST_CASE("taskapi otlp: allocation failures inside the wire API's noexcept calls drop the item "
          "instead of terminating",
          "[taskapi][otlp]") {
    namespace api = opentelemetry;
    OtlpSink sink(SinkMode::ok);
    WireFixture wire(sink);
    REQUIRE(wire.tracer);
    REQUIRE(wire.logger);
    // Long values: the span's inline buffer (640 bytes) has to grow, at start and later.
    const std::string big(900, 'a');
    const std::vector<std::pair<api::nostd::string_view, api::common::AttributeValue>> attrs = {
        {"one", api::nostd::string_view(big)}, {"two", api::nostd::string_view(big)}};
    // Once without failures: the API's own statics (the default TraceState) are made on first
    // use, in its noexcept code, which is not ours to test.
    wire.tracer->StartSpan("warm-up", attrs)->End();
    int spans = 0;
    for (long k = 0; k < 60; ++k) {
        t_allocations_left = k;
        {
            auto span = wire.tracer->StartSpan("alloc", attrs);
            span->SetAttribute("three", api::nostd::string_view(big));
            span->AddEvent("event", {{"four", api::nostd::string_view(big)}});
            span->End();
        }
        {
            auto record = wire.logger->CreateLogRecord();
            if (record) {
                record->SetBody(api::nostd::string_view(big));
                record->SetAttribute("five", api::nostd::string_view(big));
                record->SetTimestamp(std::chrono::system_clock::now());
                wire.logger->EmitLogRecord(std::move(record));
            }
        }
        t_allocations_left = -1;
        ++spans;
    }
    CHECK(spans == 60); // got here: no std::terminate from a noexcept function
    CHECK(wire.tracer->flush(std::chrono::seconds(10)));
    CHECK(wire.logger->flush(std::chrono::seconds(10)));
    const double dropped = wire.counter("otel_export_dropped_total", "traces");
    const auto received = sink.spans().size();
    INFO("received " << received << ", dropped " << dropped);
    CHECK(dropped > 0);  // incomplete spans are dropped and counted, not sent half-encoded
    CHECK(received > 0); // and the others still arrive, decodable
    CHECK(wire.counter("otel_export_dropped_total", "logs") > 0);
    wire.tracer->shutdown(std::chrono::seconds(1));
    wire.logger->shutdown(std::chrono::seconds(1));
}
