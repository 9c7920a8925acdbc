// Telemetry backpressure through the whole stack (issue 20): the shipped nginx config (rendered for
// loopback) in front of the real task API binary, whose OTLP/HTTP export goes to a sink standing
// in for the OpenTelemetry Collector. For a while the sink refuses every export the way the
// collector's OTLP/HTTP receiver refuses, then accepts again. Asserted through nginx and the task
// API's /metrics: requests keep answering 2xx fast, retried batches arrive only after the
// refusal's Retry-After (or the exporter's own back-off), final refusals are counted in
// otel_export_failed_batches_total, nothing else is lost (dropped stays 0 within the queue bound),
// and shutdown stays bounded while the collector keeps refusing.
//
// What the real collector answers (read at the tag the "current" pin set uses: contrib 0.159.0,
// core receiver at the same version):
// - opentelemetry-collector@v0.159.0:receiver/otlpreceiver/otlphttp.go `writeError` /
//   `writeStatusResponse`: an error from the pipeline becomes a google.rpc.Status, marshalled as
//   protobuf for application/x-protobuf requests (encoder.go `protoEncoder.marshalStatus`,
//   Content-Type application/x-protobuf) and as protojson for JSON requests. The HTTP status
//   comes from the gRPC code (internal/errors/errors.go `GetHTTPStatusCodeFromStatus`:
//   ResourceExhausted -> 429; Unavailable, Canceled, DeadlineExceeded, Aborted, OutOfRange,
//   DataLoss -> 503). Retry-After is set only for 429/503 AND only when the Status carries a
//   google.rpc.RetryInfo detail, as whole delay-seconds (`int64(retryDelay / time.Second)`).
// - opentelemetry-collector@v0.159.0:processor/memorylimiterprocessor/memorylimiter.go returns
//   internal/memorylimiter/memorylimiter.go `ErrDataRefused` ("data refused due to high memory
//   usage"), a plain non-permanent error: internal/errors/errors.go `GetStatusFromError` makes it
//   codes.Unavailable, so the memory limiter processor the lab's collector config uses
//   (stacks/lab/otel-collector/config.current.yaml) answers **503** with
//   Status{code 14, message "data refused due to high memory usage"} and **no Retry-After**.
//   The exporter queue (exporter/exporterhelper/internal/queue/queue.go `ErrQueueIsFull`,
//   "sending queue is full") is the same kind of plain error, so it would also be 503 without
//   Retry-After; in the lab's pipeline the batch processor sits before the exporters
//   (processor/batchprocessor), so that error never reaches the receiver at all.
// - opentelemetry-collector@v0.159.0:extension/memorylimiterextension/memorylimiter.go (the
//   extension used as an HTTP middleware, not configured in the lab) answers
//   `http.Error(resp, "Too Many Requests", 429)`: text/plain, no Status body, no Retry-After.
// - A 429 with Retry-After therefore comes only from a pipeline error that is a
//   ResourceExhausted Status with a RetryInfo detail; that is the shape the 429 fixture below
//   reproduces (Status{code 8, message, details [Any{type.googleapis.com/google.rpc.RetryInfo,
//   RetryInfo{retry_delay Duration{seconds N}}}]} and `Retry-After: N`). Field numbers:
//   googleapis google/rpc/status.proto (code 1, message 2, details 3), google/protobuf/any.proto
//   (type_url 1, value 2), google/rpc/error_details.proto RetryInfo (retry_delay 1),
//   google/protobuf/duration.proto (seconds 1, nanos 2).
// So the 503 case is what the lab's collector really sends under memory pressure; the 429 case
// is the throttling answer OTLP/HTTP defines and the receiver writes when a component asks for it.

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/StreamCopier.h>
#include <opentelemetry/proto/collector/logs/v1/logs_service.pb.h>
#include <opentelemetry/proto/collector/trace/v1/trace_service.pb.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdio>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <labctl/core/process.hpp>

#include "fault_support.hpp"
#include "harness.hpp"
#include "skip.hpp"
#include "stack_support.hpp"

using namespace labctl::test::stack;
namespace fs = std::filesystem;
namespace taskapi = labctl::test::taskapi;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// --- protobuf by hand (google.rpc.Status is not among the generated classes) ------------------

void put_varint(std::string& out, std::uint64_t v) {
    while (v >= 0x80) {
        out.push_back(static_cast<char>((v & 0x7f) | 0x80));
        v >>= 7;
    }
    out.push_back(static_cast<char>(v));
}
void put_len_field(std::string& out, int field, const std::string& bytes) {
    put_varint(out, (static_cast<std::uint64_t>(field) << 3) | 2);
    put_varint(out, bytes.size());
    out += bytes;
}
void put_varint_field(std::string& out, int field, std::uint64_t v) {
    put_varint(out, static_cast<std::uint64_t>(field) << 3);
    put_varint(out, v);
}

/// google.rpc.Status{code, message, details: [RetryInfo{retry_delay: seconds}] if seconds > 0}.
std::string rpc_status(int code, const std::string& message, int retry_seconds) {
    std::string s;
    put_varint_field(s, 1, static_cast<std::uint64_t>(code));
    put_len_field(s, 2, message);
    if (retry_seconds > 0) {
        std::string duration;
        put_varint_field(duration, 1, static_cast<std::uint64_t>(retry_seconds));
        std::string retry_info;
        put_len_field(retry_info, 1, duration);
        std::string any;
        put_len_field(any, 1, "type.googleapis.com/google.rpc.RetryInfo");
        put_len_field(any, 2, retry_info);
        put_len_field(s, 3, any);
    }
    return s;
}

/// The same Status as protojson (what the receiver's jsonEncoder writes for JSON requests).
std::string rpc_status_json(int code, const std::string& message, int retry_seconds) {
    nlohmann::json j{{"code", code}, {"message", message}};
    if (retry_seconds > 0) {
        j["details"] =
            nlohmann::json::array({{{"@type", "type.googleapis.com/google.rpc.RetryInfo"},
                                    {"retryDelay", std::to_string(retry_seconds) + "s"}}});
    }
    return j.dump();
}

std::string to_hex(const std::string& bytes) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (const unsigned char c : bytes) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 0xf]);
    }
    return out;
}

std::string random_hex(std::size_t chars) {
    static std::mutex m;
    static std::mt19937_64 rng{std::random_device{}()};
    const std::lock_guard lock(m);
    std::string out;
    while (out.size() < chars) {
        char buf[17];
        std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(rng()));
        out += buf;
    }
    return out.substr(0, chars);
}

// --- the collector stand-in -------------------------------------------------------------------

/// How the collector refuses while refusing.
struct Refusal {
    int status = 429;    ///< 429 or 503
    int grpc_code = 8;   ///< RESOURCE_EXHAUSTED (8) or UNAVAILABLE (14)
    std::string message; ///< the Status message
    int retry_after = 0; ///< seconds; 0: no RetryInfo and no Retry-After header
};

Refusal throttled(int seconds) {
    return {429, 8, "data refused: throttled, retry later", seconds};
}
Refusal memory_limiter() {
    return {503, 14, "data refused due to high memory usage", 0};
}

/// One POST the sink answered.
struct Exchange {
    std::string signal; ///< "traces", "logs", or "json" (a browser-style OTLP/JSON request)
    std::size_t body_hash = 0;
    Clock::time_point arrived;
    Clock::time_point answered; ///< just before the answer was sent
    int status = 0;
    std::vector<std::string> span_ids;         ///< traces: every span
    std::vector<std::string> server_trace_ids; ///< traces: trace ids of SERVER spans
    std::size_t items = 0;                     ///< spans or log records
};

/// OTLP/HTTP on 127.0.0.1 that refuses (as `Refusal`) every export arriving in a time window,
/// accepts (200, empty Export*ServiceResponse) outside it, and records every exchange.
class CollectorStandIn {
public:
    CollectorStandIn() {
        Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0));
        m_port = socket.address().port();
        Poco::Net::HTTPServerParams::Ptr params = new Poco::Net::HTTPServerParams;
        params->setMaxThreads(8);
        params->setKeepAlive(true);
        m_server = std::make_unique<Poco::Net::HTTPServer>(new Factory(*this), socket, params);
        m_server->start();
    }
    ~CollectorStandIn() { m_server->stopAll(true); }
    CollectorStandIn(const CollectorStandIn&) = delete;
    CollectorStandIn& operator=(const CollectorStandIn&) = delete;

    std::uint16_t port() const { return m_port; }
    std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(m_port); }

    /// Refuses from now for `window` (Clock::duration::max(): until the end).
    void refuse_for(Clock::duration window, Refusal how) {
        const std::lock_guard lock(m_mutex);
        m_refusal = std::move(how);
        m_refuse_from = Clock::now();
        m_refuse_until =
            window == Clock::duration::max() ? Clock::time_point::max() : m_refuse_from + window;
    }
    std::vector<Exchange> exchanges() const {
        const std::lock_guard lock(m_mutex);
        return m_exchanges;
    }
    /// Trace ids of SERVER spans in accepted trace exports.
    std::set<std::string> accepted_server_traces() const {
        std::set<std::string> out;
        for (const auto& e : exchanges())
            if (e.signal == "traces" && e.status == 200)
                out.insert(e.server_trace_ids.begin(), e.server_trace_ids.end());
        return out;
    }

private:
    void handle(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response) {
        Exchange e;
        e.arrived = Clock::now();
        std::string body;
        Poco::StreamCopier::copyToString(request.stream(), body);
        const bool json = request.getContentType().find("json") != std::string::npos;
        e.body_hash = std::hash<std::string>{}(body);
        if (json) {
            e.signal = "json";
        } else if (request.getURI() == "/v1/traces") {
            e.signal = "traces";
            opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest req;
            if (req.ParseFromString(body)) {
                for (const auto& rs : req.resource_spans())
                    for (const auto& ss : rs.scope_spans())
                        for (const auto& s : ss.spans()) {
                            e.span_ids.push_back(to_hex(s.span_id()));
                            if (s.kind() == opentelemetry::proto::trace::v1::Span::SPAN_KIND_SERVER)
                                e.server_trace_ids.push_back(to_hex(s.trace_id()));
                            ++e.items;
                        }
            }
        } else if (request.getURI() == "/v1/logs") {
            e.signal = "logs";
            opentelemetry::proto::collector::logs::v1::ExportLogsServiceRequest req;
            if (req.ParseFromString(body))
                for (const auto& rl : req.resource_logs())
                    for (const auto& sl : rl.scope_logs())
                        e.items += static_cast<std::size_t>(sl.log_records_size());
        } else {
            e.signal = "other";
        }
        Refusal how;
        bool refuse = false;
        {
            const std::lock_guard lock(m_mutex);
            refuse = e.arrived >= m_refuse_from && e.arrived < m_refuse_until;
            how = m_refusal;
        }
        if (refuse) {
            e.status = how.status;
            response.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(how.status));
            if (how.retry_after > 0)
                response.set("Retry-After", std::to_string(how.retry_after));
            const std::string answer =
                json ? rpc_status_json(how.grpc_code, how.message, how.retry_after)
                     : rpc_status(how.grpc_code, how.message, how.retry_after);
            response.setContentType(json ? "application/json" : "application/x-protobuf");
            response.setContentLength(static_cast<std::streamsize>(answer.size()));
            e.answered = Clock::now();
            record(e);
            response.send() << answer;
            return;
        }
        e.status = 200;
        response.setStatus(Poco::Net::HTTPResponse::HTTP_OK);
        e.answered = Clock::now();
        record(e);
        if (json) {
            response.setContentType("application/json");
            response.send() << "{}";
        } else {
            response.setContentType("application/x-protobuf");
            response.setContentLength(0); // an empty Export*ServiceResponse
            response.send();
        }
    }
    void record(const Exchange& e) {
        const std::lock_guard lock(m_mutex);
        m_exchanges.push_back(e);
    }

    class Handler final : public Poco::Net::HTTPRequestHandler {
    public:
        explicit Handler(CollectorStandIn& owner) : m_owner(owner) {}
        void handleRequest(Poco::Net::HTTPServerRequest& request,
                           Poco::Net::HTTPServerResponse& response) override {
            m_owner.handle(request, response);
        }

    private:
        CollectorStandIn& m_owner;
    };
    class Factory final : public Poco::Net::HTTPRequestHandlerFactory {
    public:
        explicit Factory(CollectorStandIn& owner) : m_owner(owner) {}
        Poco::Net::HTTPRequestHandler*
        createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
            return new Handler(m_owner);
        }

    private:
        CollectorStandIn& m_owner;
    };

    mutable std::mutex m_mutex;
    Refusal m_refusal;
    Clock::time_point m_refuse_from = Clock::time_point::max();
    Clock::time_point m_refuse_until = Clock::time_point::max();
    std::vector<Exchange> m_exchanges;
    std::uint16_t m_port = 0;
    std::unique_ptr<Poco::Net::HTTPServer> m_server;
};

// --- load through nginx -----------------------------------------------------------------------

struct Sample {
    std::string trace_id;
    int status = 0;
    double seconds = 0;
};

/// `threads` clients sending GET /api/tasks through nginx with their own sampled traceparent,
/// `pause` apart, for `duration`.
std::vector<Sample> load(std::uint16_t port, int threads, std::chrono::milliseconds duration,
                         std::chrono::milliseconds pause) {
    std::mutex m;
    std::vector<Sample> samples;
    std::vector<std::thread> workers;
    const auto end = Clock::now() + duration;
    for (int i = 0; i < threads; ++i) {
        workers.emplace_back([&] {
            while (Clock::now() < end) {
                Sample s;
                s.trace_id = random_hex(32);
                const auto t0 = Clock::now();
                try {
                    const auto r = taskapi::http(
                        port, "GET", "/api/tasks", {}, {},
                        {{"traceparent", "00-" + s.trace_id + "-" + random_hex(16) + "-01"}}, 10s);
                    s.status = r.status;
                } catch (...) {
                    s.status = 0;
                }
                s.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
                {
                    const std::lock_guard lock(m);
                    samples.push_back(s);
                }
                std::this_thread::sleep_for(pause);
            }
        });
    }
    for (auto& w : workers)
        w.join();
    return samples;
}

double quantile(std::vector<double> v, double q) {
    if (v.empty())
        return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

bool wait_until_true(const std::function<bool()>& done, std::chrono::milliseconds bound) {
    const auto end = Clock::now() + bound;
    while (Clock::now() < end) {
        if (done())
            return true;
        std::this_thread::sleep_for(100ms);
    }
    return done();
}

void require_tools() {
    if (!labctl::find_program("nginx"))
        labctl::test::skip("nginx is not installed (scripts/install-deps installs it)");
}

/// The task API exporting to `collector` (wire pipeline: plain http://), nginx in front of it.
struct Stack {
    CollectorStandIn collector;
    taskapi::TempDir dir;
    std::unique_ptr<taskapi::ApiProcess> api;
    std::uint16_t nginx_port = taskapi::free_port();
    std::unique_ptr<Nginx> nginx;

    Stack() {
        fs::create_directories(dir.path() / "html");
        spit(dir.path() / "html" / "index.html", "<!doctype html><title>lab</title>\n");
        api = std::make_unique<taskapi::ApiProcess>(
            dir.path() / "tasks.db", dir.path() / "taskapi.log",
            std::map<std::string, std::string>{
                {"OTEL_SDK_DISABLED", "false"},
                {"OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint()},
                {"OTEL_BSP_SCHEDULE_DELAY", "200"},
                {"OTEL_BSP_MAX_QUEUE_SIZE", "2048"},
                {"LOG_LEVEL", "info"}});
        nginx = std::make_unique<Nginx>(
            dir.path() / "nginx",
            render_nginx_server(nginx_port, api->port(), collector.port(), dir.path() / "html"),
            nginx_port);
    }
    std::string metrics() const {
        const auto r = taskapi::http(api->port(), "GET", "/metrics");
        REQUIRE(r.status == 200);
        return r.body;
    }
};

/// The processes a Stack started: the task API, nginx and nginx's workers.
std::vector<pid_t> started_processes() {
    std::vector<pid_t> out;
    for (const pid_t child : labctl::test::children_of_self()) {
        out.push_back(child);
        for (const pid_t d : labctl::test::descendants(child))
            out.push_back(d);
    }
    return out;
}

/// Nothing left behind once the Stack is gone: none of `started` is alive (nginx's workers end
/// just after their master) and this test has no child left, not even a zombie.
void check_nothing_left(const std::vector<pid_t>& started) {
    const auto alive = [](pid_t p) {
        const auto [parent, state] = labctl::test::process_parent(p);
        return parent != -1 && state != 'Z';
    };
    CHECK(wait_until_true([&] { return std::none_of(started.begin(), started.end(), alive); }, 5s));
    CHECK(labctl::test::children_of_self().empty());
}

/// Per signal: how the sink saw the task API's exports of that signal.
struct SignalStory {
    std::size_t refused = 0;        ///< answers that refused
    std::size_t final_failures = 0; ///< bodies refused on both attempts
    std::size_t retried_ok = 0;     ///< bodies refused once, accepted on the retry
    std::size_t lost_items = 0;     ///< items in the final failures
    std::size_t third_attempts = 0; ///< bodies sent more than twice (must be 0)
    std::vector<double> retry_gaps; ///< refusal answered -> same body again, seconds
    std::set<std::string> lost_server_traces;
};

SignalStory story(const std::vector<Exchange>& all, const std::string& signal) {
    SignalStory s;
    std::map<std::size_t, std::vector<const Exchange*>> by_body;
    for (const auto& e : all)
        if (e.signal == signal)
            by_body[e.body_hash].push_back(&e);
    for (const auto& [hash, attempts] : by_body) {
        for (const auto* a : attempts)
            s.refused += a->status != 200 ? 1 : 0;
        if (attempts.size() > 2)
            ++s.third_attempts;
        for (std::size_t i = 1; i < attempts.size(); ++i)
            s.retry_gaps.push_back(
                std::chrono::duration<double>(attempts[i]->arrived - attempts[i - 1]->answered)
                    .count());
        const bool accepted = std::any_of(attempts.begin(), attempts.end(),
                                          [](const Exchange* a) { return a->status == 200; });
        if (!accepted && attempts.size() >= 2) {
            ++s.final_failures;
            s.lost_items += attempts.front()->items;
            s.lost_server_traces.insert(attempts.front()->server_trace_ids.begin(),
                                        attempts.front()->server_trace_ids.end());
        } else if (accepted && attempts.size() >= 2) {
            ++s.retried_ok;
        }
    }
    return s;
}

/// The refusal scenario both answers share: a baseline, then `window` of refusals while bounded
/// load goes through nginx, then acceptance; everything checked afterwards.
void run_refusal_scenario(const Refusal& how, Clock::duration window, double expected_wait,
                          std::vector<pid_t>& started) {
    require_tools();
    Stack s;
    started = started_processes();
    REQUIRE(started.size() >= 3); // the task API, nginx and at least one worker

    // Baseline: the pipeline delivers.
    const auto before = load(s.nginx_port, 1, 600ms, 20ms);
    REQUIRE_FALSE(before.empty());
    REQUIRE(wait_until_true(
        [&] {
            const auto got = s.collector.accepted_server_traces();
            return std::all_of(before.begin(), before.end(),
                               [&](const Sample& x) { return got.count(x.trace_id) == 1; });
        },
        10s));
    std::vector<double> base_latency;
    for (const auto& x : before)
        base_latency.push_back(x.seconds);

    // The refusals, with load through nginx all along (a browser OTLP/JSON post among it).
    const auto refused_at = Clock::now();
    s.collector.refuse_for(window, how);
    taskapi::HttpResult browser_answer;
    std::thread browser([&] {
        std::this_thread::sleep_for(300ms);
        try {
            browser_answer = taskapi::http(s.nginx_port, "POST", "/otlp/v1/traces",
                                           R"({"resourceSpans":[]})", "application/json");
        } catch (...) {
        }
    });
    const auto during = load(s.nginx_port, 2, 4s, 40ms);
    browser.join();
    // nginx passes the collector's refusal through unchanged (no proxy_intercept_errors), so a
    // browser's OTLP exporter sees the same status, Retry-After and Status body.
    CHECK(browser_answer.status == how.status);
    CHECK(browser_answer.header("retry-after") ==
          (how.retry_after > 0 ? std::to_string(how.retry_after) : std::string()));
    CHECK(browser_answer.header("content-type").find("application/json") != std::string::npos);
    if (browser_answer.status == how.status)
        CHECK(browser_answer.json()["code"] == how.grpc_code);

    // Every request's SERVER span arrives, unless its batch was refused on both attempts.
    const auto settle = Clock::now();
    const bool settled = wait_until_true(
        [&] {
            const auto all = s.collector.exchanges();
            const auto got = s.collector.accepted_server_traces();
            const auto lost = story(all, "traces").lost_server_traces;
            return std::all_of(during.begin(), during.end(), [&](const Sample& x) {
                return got.count(x.trace_id) == 1 || lost.count(x.trace_id) == 1;
            });
        },
        20s);
    std::this_thread::sleep_for(1s); // the logs pipeline's last retry, if any
    const auto all = s.collector.exchanges();
    const auto traces = story(all, "traces");
    const auto logs = story(all, "logs");
    const auto metrics = s.metrics();
    const double failed_traces =
        taskapi::metric_sum(metrics, "otel_export_failed_batches_total", {"signal=\"traces\""});
    const double failed_logs =
        taskapi::metric_sum(metrics, "otel_export_failed_batches_total", {"signal=\"logs\""});
    const double dropped = taskapi::metric_sum(metrics, "otel_export_dropped_total");

    std::vector<double> latency;
    std::size_t not_2xx = 0;
    std::set<std::string> missing;
    const auto got = s.collector.accepted_server_traces();
    for (const auto& x : during) {
        latency.push_back(x.seconds);
        not_2xx += (x.status < 200 || x.status >= 300) ? 1 : 0;
        if (got.count(x.trace_id) == 0 && traces.lost_server_traces.count(x.trace_id) == 0)
            missing.insert(x.trace_id);
    }
    const auto gaps = [](const SignalStory& st) {
        std::string out;
        for (const double g : st.retry_gaps)
            out += (out.empty() ? "" : ", ") + std::to_string(g).substr(0, 5);
        return out;
    };
    std::cout << "refusals " << how.status << " (Retry-After "
              << (how.retry_after > 0 ? std::to_string(how.retry_after) : "none") << ") for "
              << std::chrono::duration<double>(window).count() << " s: " << during.size()
              << " requests through nginx, " << not_2xx << " non-2xx, latency p50 "
              << quantile(latency, 0.5) * 1000 << " ms p99 " << quantile(latency, 0.99) * 1000
              << " ms max " << quantile(latency, 1.0) * 1000 << " ms (baseline p50 "
              << quantile(base_latency, 0.5) * 1000 << " ms)\n"
              << "  traces: " << traces.refused << " refusals, " << traces.retried_ok
              << " batches accepted on retry, " << traces.final_failures << " final failures ("
              << traces.lost_items << " spans), metric " << failed_traces << "; retry gaps [s] "
              << gaps(traces) << "\n"
              << "  logs: " << logs.refused << " refusals, " << logs.retried_ok
              << " accepted on retry, " << logs.final_failures << " final failures ("
              << logs.lost_items << " records), metric " << failed_logs << "; retry gaps [s] "
              << gaps(logs) << "\n"
              << "  dropped " << dropped << "; settled "
              << std::chrono::duration<double>(Clock::now() - settle).count() << " s after load, "
              << std::chrono::duration<double>(Clock::now() - refused_at).count()
              << " s after the first refusal\n";

    // Requests never wait for telemetry: all 2xx, none anywhere near the export's wait.
    REQUIRE(during.size() >= 50);
    CHECK(not_2xx == 0);
    CHECK(quantile(latency, 0.99) < 0.5);
    CHECK(quantile(latency, 1.0) < expected_wait - 0.1);
    // The refusals happened and were retried once each, never before the wait asked for.
    CHECK(traces.refused >= 2);
    CHECK(logs.refused >= 2);
    CHECK(traces.retried_ok >= 1);
    CHECK(logs.retried_ok >= 1);
    CHECK(traces.third_attempts == 0);
    CHECK(logs.third_attempts == 0);
    for (const double g : traces.retry_gaps) {
        CHECK(g >= expected_wait - 0.005);
        CHECK(g < expected_wait + 2.0);
    }
    for (const double g : logs.retry_gaps) {
        CHECK(g >= expected_wait - 0.005);
        CHECK(g < expected_wait + 2.0);
    }
    // The window outlasts one wait, so the first batch of each signal is refused twice: a final
    // failure, counted where it failed, exactly as often as the collector saw it.
    CHECK(traces.final_failures >= 1);
    CHECK(logs.final_failures >= 1);
    CHECK(failed_traces == static_cast<double>(traces.final_failures));
    CHECK(failed_logs == static_cast<double>(logs.final_failures));
    // Nothing else is lost: the queue (2048 per signal) held everything that waited.
    CHECK(settled);
    CHECK(dropped == 0);
    INFO("requests whose SERVER span neither arrived nor was in a final failure: "
         << missing.size());
    CHECK(missing.empty());
}

} // namespace

TEST_CASE("stack faults: a collector answering 429 with Retry-After never slows requests through "
          "nginx, and batches are retried after the Retry-After and final refusals are counted",
          "[stack][fault]") {
    // Retry-After 2 s, refusing for 3.5 s: the first batch (sent within 0.2 s of the first
    // refusal, up to 1.4 s on a slow machine) is retried inside the window and refused again;
    // the next batch's retry falls after it and is accepted.
    std::vector<pid_t> started;
    run_refusal_scenario(throttled(2), 3500ms, 2.0, started);
    check_nothing_left(started);
}

TEST_CASE("stack faults: a collector whose memory limiter refuses (503, no Retry-After) is "
          "retried after the exporter's 1 s back-off, and final refusals are counted",
          "[stack][fault]") {
    // The task API's own back-off without a Retry-After: 1 s (app/src/otlp_http.hpp k_backoff).
    std::vector<pid_t> started;
    run_refusal_scenario(memory_limiter(), 1800ms, 1.0, started);
    check_nothing_left(started);
}

TEST_CASE("stack faults: shutdown while the collector keeps refusing with a long Retry-After is "
          "bounded and clean",
          "[stack][fault]") {
    require_tools();
    std::vector<pid_t> started;
    {
        Stack s;
        started = started_processes();
        // Retry-After 30 s (the exporter's cap): an export thread waiting it out must not hold
        // SIGTERM up.
        s.collector.refuse_for(Clock::duration::max(), throttled(30));
        const auto during = load(s.nginx_port, 2, 1500ms, 40ms);
        REQUIRE_FALSE(during.empty());
        for (const auto& x : during)
            CHECK(x.status == 200);
        REQUIRE(wait_until_true(
            [&] {
                const auto all = s.collector.exchanges();
                return std::any_of(all.begin(), all.end(),
                                   [](const Exchange& e) { return e.status == 429; });
            },
            5s));
        const auto t0 = Clock::now();
        const auto code = s.api->terminate(15s);
        const double took = std::chrono::duration<double>(Clock::now() - t0).count();
        std::cout << "shutdown while refused (Retry-After 30 s): exit "
                  << (code ? std::to_string(*code) : "none") << " after " << took << " s\n";
        REQUIRE(code.has_value());
        CHECK(*code == 0);
        // The telemetry flush is bounded at 2 s (app/src/main.cpp), far below the 30 s asked for.
        CHECK(took < 4.0);
        // nginx answers the stopped backend with its JSON 502, promptly.
        const auto down = taskapi::http(s.nginx_port, "GET", "/api/tasks", {}, {}, {}, 10s);
        CHECK(down.status == 502);
        CHECK(down.seconds < 3.0);
    }
    check_nothing_left(started);
}
