#pragma once
// Contract fixtures for `labctl verify`: small Poco HTTP servers on free 127.0.0.1 ports that
// answer like Tempo, Loki, Grafana, the Collector, Prometheus and nginx in front of the task API,
// with the documented shapes and quirks of STACK.md §5:
// - nginx/API: GET /api/tasks or POST /api/smoke/db with a traceparent "produces" a SERVER span
// (child of the caller's
//   span) with a DB CLIENT child in Tempo, and a log line that the API pushes to Loki (204).
// - Tempo: 404 for a trace until it has been asked `tempo_polls_before_found` times; span ids in
//   base64, kinds as "SPAN_KIND_*" names; v1 `batches` or v2 `trace.resourceSpans`; search ids
//   with leading zeros stripped.
// - Loki: 2.9 (JSON line body with `traceid`) or 3.x (structured metadata `trace_id`).
// - Grafana: datasource health 400 {"status":"ERROR"} when asked to; dashboards with
//   meta.provisioned; a panel with a broken PromQL expression when asked to.
// - Prometheus (contract): 400 bad_data for unbalanced expressions, "NaN" values otherwise.
// Only 127.0.0.1 is ever bound or contacted.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace labctl::test::verify {

struct Reply {
    int status = 200;
    std::string body;
    std::string content_type = "application/json";
};

struct Request {
    std::string method, path, query, body;
    std::map<std::string, std::string> headers;       ///< lower-case names
    std::string param(const std::string& name) const; ///< decoded query parameter
};

/// One HTTP server on 127.0.0.1:<free port> calling `handler` for every request.
class FixtureServer {
public:
    explicit FixtureServer(std::function<Reply(const Request&)> handler);
    ~FixtureServer();
    FixtureServer(const FixtureServer&) = delete;
    FixtureServer& operator=(const FixtureServer&) = delete;
    int port() const { return m_port; }
    std::string url() const;

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
    int m_port = 0;
};

/// A TCP listener that completes connections (kernel backlog) and never answers.
class BlackHole {
public:
    BlackHole();
    ~BlackHole();
    BlackHole(const BlackHole&) = delete;
    BlackHole& operator=(const BlackHole&) = delete;
    int port() const { return m_port; }
    std::string url() const;

private:
    int m_fd = -1;
    int m_port = 0;
};

struct Quirks {
    int tempo_polls_before_found = 3;
    int loki_polls_before_found = 0; ///< query_range answers empty this many times per trace
    int latency_ms = 0;              ///< every answer is delayed this long (backend latency)
    bool tempo_v2 = false;
    bool loki_3x = false;
    bool grafana_tempo_health_error = false;
    bool broken_panel = false;
    bool collector_unavailable = false; ///< health_check answers 503 "Server not available"
    std::vector<std::string> jobs{"prometheus", "otel-collector", "task-api",
                                  "tempo",      "loki",           "grafana"};
};

class FakeStack {
public:
    /// `with_prometheus`: also serve a contract Prometheus (else tests bring a real one).
    explicit FakeStack(Quirks quirks = {}, bool with_prometheus = true);
    ~FakeStack();

    /// verify.endpoints for lab.yaml: name -> URL (prometheus only when served here).
    std::map<std::string, std::string> endpoints() const;
    /// A Prometheus text exposition endpoint for scrape targets: <collector url>/metrics.
    int metrics_port() const;

    int tempo_polls() const { return m_tempo_polls.load(); }
    int loki_pushes_accepted() const { return m_loki_204.load(); }
    /// Trace ids (hex) the fake API saw.
    std::vector<std::string> traces() const;

    /// Feeds real telemetry in (the real-components test decodes the task API's OTLP exports):
    /// one OTLP JSON `resourceSpans` element whose spans all belong to `trace_id` (hex), and a
    /// log record body with its trace id. Tempo and Loki then answer with them.
    void ingest_spans(const std::string& trace_id, const std::string& resource_spans_json);
    void ingest_log(const std::string& trace_id, const std::string& body);

private:
    Reply api(const Request& r);
    Reply tempo(const Request& r);
    Reply loki(const Request& r);
    Reply grafana(const Request& r);
    Reply prometheus(const Request& r);
    Reply collector(const Request& r);

    Quirks m_quirks;
    mutable std::mutex m_mutex;
    std::map<std::string, std::string> m_trace_parent; ///< trace id -> caller's span id
    std::map<std::string, std::string> m_trace_route;  ///< trace id -> "GET /api/tasks"
    std::map<std::string, int> m_asked;
    std::map<std::string, int> m_loki_asked; ///< trace id -> Tempo polls so far
    std::vector<std::pair<std::string, std::string>> m_log_lines; ///< trace id, line
    std::map<std::string, std::vector<std::string>> m_ingested;   ///< trace id -> resourceSpans
    std::atomic<int> m_tempo_polls{0};
    std::atomic<int> m_loki_204{0};
    std::unique_ptr<FixtureServer> m_collector, m_tempo, m_loki, m_grafana, m_prometheus, m_nginx;
};

} // namespace labctl::test::verify
