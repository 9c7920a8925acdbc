#pragma once
// Contract fixtures for `labctl verify`: small Poco HTTP servers on free 127.0.0.1 ports that
// answer like Tempo, Loki, Grafana, the Collector, Prometheus and nginx in front of the task API.
// Every endpoint reproduces an upstream handler named in a comment as repo@tag:path (the table is
// docs/UPSTREAM.md), for two pin sets (PinSet): the original lab's versions and a current set.
// - nginx/API: GET /api/tasks or POST /api/smoke/db with a traceparent "produces" a SERVER span
//   (child of the caller's span) with a DB CLIENT child in Tempo, and a log record in Loki. The
//   fake API also decides which series the fake Prometheus has (see FakeStack::prometheus).
// - Tempo: v1 /api/traces/<id> `batches` at both pins, /api/v2/traces/<id> only at the current
//   pin; 404 "trace not found" for a trace until it has been asked `tempo_polls_before_found`
//   times; base64 ids, "SPAN_KIND_*" names; search ids with leading zeros stripped.
// - Loki: 2.9 (collector loki exporter: JSON line with `traceid`) or 3.x (native OTLP:
//   service_name index label, structured metadata `trace_id`, merged into the stream labels or,
//   with X-Loki-Response-Encoding-Flags: categorize-labels, as a third value element).
// - Grafana: the real provisioned dashboards of stacks/lab/grafana/dashboards, anonymous Viewer
//   permissions (403 on datasource settings), Tempo without a backend health check (10.2: 404
//   {"message":"Not found"}, current: 501 plugin.notImplemented), a real datasource proxy to the
//   fake Tempo.
// - Prometheus: 400 bad_data for unparsable input, `result: []` for series that do not exist.
// Sources read: grafana/tempo@v2.3.1 and @v2.10.8, grafana/loki@v2.9.3 and @v3.7.6,
// prometheus/prometheus@v2.48.1 and @v3.14.0 at their tags; grafana/grafana@00012cef (main,
// ~12.2.0-pre) and an untagged 10.x copy, and opentelemetry-collector-contrib's main, from the
// search index (too large to mirror here: not confirmed at the pinned tags, see docs/UPSTREAM.md).
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

/// Which upstream versions the fixtures reproduce (docs/UPSTREAM.md).
enum class PinSet { original, current };

struct PinVersions {
    std::string grafana, tempo, loki, collector, prometheus;
};
/// original: Grafana 10.2.3, Tempo 2.3.1, Loki 2.9.3, collector-contrib 0.96.0, Prometheus
/// 2.48.1; current: the set of /tmp/pins-current.txt (Grafana 12.3.1, Tempo 2.10.8, Loki 3.7.6,
/// collector-contrib 0.159.0, Prometheus 3.14.0).
const PinVersions& pin_versions(PinSet pins);
const char* to_string(PinSet pins);

struct Quirks {
    PinSet pins = PinSet::original;
    int tempo_polls_before_found = 3;
    int loki_polls_before_found = 0; ///< query_range answers empty this many times per trace
    int latency_ms = 0;              ///< every answer is delayed this long (backend latency)
    /// Grafana: this datasource's backend health check fails (400 {"status":"ERROR",…}).
    std::string grafana_health_error_uid;
    /// Grafana's datasource proxy cannot reach Tempo: 502 Bad Gateway.
    bool grafana_proxy_fails = false;
    /// Basic-auth credentials the fake Grafana knows as an org Admin; anything else with basic
    /// auth is 401, no Authorization header is the anonymous Viewer.
    std::string grafana_admin_user = "admin";
    std::string grafana_admin_password = "fixture-admin-password";
    bool broken_panel = false; ///< the SLO dashboard gets a panel with unbalanced PromQL
    /// Metric names the fake Prometheus never has, whatever the traffic (a series the API does
    /// not produce).
    std::vector<std::string> absent_metrics;
    /// Loki 3 answers in the merged form even when asked for categorize-labels (a proxy that
    /// drops the header).
    bool loki_ignores_encoding_flags = false;
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
    /// Requests the fake Grafana answered, as "METHOD path status" (for the tests).
    std::vector<std::string> grafana_requests() const;
    /// Requests with an Authorization header the fake Grafana saw.
    int grafana_authorized_requests() const { return m_grafana_auth.load(); }
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
    Reply grafana_route(const Request& r);
    /// Does a PromQL expression have a series now? (the rule is documented in fake_prometheus.cpp)
    bool has_series(const std::string& expr) const;
    bool metric_exists(const std::string& name, const std::string& matchers) const;

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
    std::atomic<int> m_grafana_auth{0};
    std::vector<std::string> m_grafana_log;
    std::vector<int> m_api_statuses; ///< status codes the fake task API answered on /api/*
    bool m_api_smoke = false;        ///< POST /api/smoke/db ran its SQL
    std::unique_ptr<FixtureServer> m_collector, m_tempo, m_loki, m_grafana, m_prometheus, m_nginx;
};

} // namespace labctl::test::verify
