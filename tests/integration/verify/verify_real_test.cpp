// `labctl verify` against real components: the task API (labctl-taskapi) exporting OTLP to a
// loopback sink, a real nginx in front of it, a real Prometheus (Debian's) scraping it, and the
// contract fixtures for Grafana, Tempo, Loki and the Collector. The related checks pass; with the
// task API stopped, prometheus.targets and stack.health fail with the evidence that says why.

#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include <labctl/core/encoding.hpp>
#include <labctl/verify/http.hpp>
#include <labctl/verify/verify.hpp>

#ifdef VERIFY_OTLP_PROTO
#include <google/protobuf/util/json_util.h>
#include <opentelemetry/proto/collector/logs/v1/logs_service.pb.h>
#include <opentelemetry/proto/collector/trace/v1/trace_service.pb.h>
#endif

#include "background.hpp"
#include "fake_stack.hpp"
#include "skip.hpp"
#include "verify_test_util.hpp"

using namespace labctl::test;
using namespace labctl::test::verify;

namespace {

std::string taskapi_binary() {
#ifdef TASKAPI_BINARY
    return TASKAPI_BINARY;
#else
    return {};
#endif
}

bool wait_http_ok(const std::string& url, std::chrono::seconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    for (int i = 0; i < 400 && std::chrono::steady_clock::now() < end; ++i) {
        if (labctl::verify::http_get(url, std::chrono::seconds(1)).status == 200)
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
}

/// The OTLP/HTTP sink the task API exports to. With the generated OTLP classes it decodes the
/// protobuf and feeds the spans (as OTLP JSON, which is Tempo's span JSON: base64 ids, kind names)
/// and the log records into the Tempo and Loki fixtures, so trace.e2e and logs.correlated see the
/// API's real telemetry. Without them it only accepts the exports.
Reply otlp_sink(FakeStack& stack, const Request& r) {
    if (r.method != "POST" || (r.path != "/v1/traces" && r.path != "/v1/logs"))
        return {404, "", "text/plain"};
#ifdef VERIFY_OTLP_PROTO
    namespace collector_trace = opentelemetry::proto::collector::trace::v1;
    namespace collector_logs = opentelemetry::proto::collector::logs::v1;
    if (r.path == "/v1/traces") {
        collector_trace::ExportTraceServiceRequest req;
        if (!req.ParseFromString(r.body))
            return {400, "", "text/plain"};
        for (const auto& rs : req.resource_spans())
            for (const auto& ss : rs.scope_spans())
                for (const auto& span : ss.spans()) {
                    opentelemetry::proto::trace::v1::ResourceSpans one;
                    *one.mutable_resource() = rs.resource();
                    auto* scope = one.add_scope_spans();
                    *scope->mutable_scope() = ss.scope();
                    *scope->add_spans() = span;
                    std::string text;
                    if (google::protobuf::util::MessageToJsonString(one, &text).ok())
                        stack.ingest_spans(labctl::to_hex(span.trace_id()), text);
                }
    } else {
        collector_logs::ExportLogsServiceRequest req;
        if (!req.ParseFromString(r.body))
            return {400, "", "text/plain"};
        for (const auto& rl : req.resource_logs())
            for (const auto& sl : rl.scope_logs())
                for (const auto& rec : sl.log_records())
                    if (!rec.trace_id().empty())
                        stack.ingest_log(labctl::to_hex(rec.trace_id()), rec.body().string_value());
    }
#else
    (void)stack;
#endif
    return {200, "", "application/x-protobuf"};
}

} // namespace

TEST_CASE("verify real components: the task API behind nginx, scraped by Prometheus, passes "
          "every related check and with the API stopped prometheus.targets and stack.health fail "
          "with evidence and exit 8",
          "[verify][real]") {
    const auto api_bin = taskapi_binary();
    if (api_bin.empty() || !std::filesystem::exists(api_bin))
        skip("labctl-taskapi is not built (app/ needs its dependencies, scripts/install-deps)");
    const auto nginx_bin = labctl::find_program("nginx");
    const auto prom_bin = labctl::find_program("prometheus");
    if (!nginx_bin || !prom_bin)
        skip("nginx and prometheus are needed (scripts/install-deps installs them)");

    TempDir dir;
    FakeStack stack({}, /*with_prometheus=*/false);
    std::atomic<int> otlp_posts{0};
    FixtureServer otlp([&](const Request& r) {
        ++otlp_posts;
        return otlp_sink(stack, r);
    });

    // The task API.
    const int api_port = free_port();
    const auto start_api = [&] {
        return std::make_unique<BackgroundProcess>(
            std::vector<std::string>{"env", "HOST=127.0.0.1", "PORT=" + std::to_string(api_port),
                                     "DB_PATH=" + (dir.path() / "tasks.db").string(),
                                     "OTEL_EXPORTER_OTLP_ENDPOINT=" + otlp.url(),
                                     "OTEL_BSP_SCHEDULE_DELAY=200", api_bin},
            dir.path() / "taskapi.log");
    };
    auto api = start_api();
    const auto api_url = "http://127.0.0.1:" + std::to_string(api_port);
    REQUIRE(wait_http_ok(api_url + "/health", std::chrono::seconds(20)));

    // nginx in front: /api/ to the API, / answered by nginx itself.
    const int nginx_port = free_port();
    std::filesystem::create_directories(dir.path() / "nginx" / "tmp");
    const auto nginx_dir = (dir.path() / "nginx").string();
    dir.write("nginx/nginx.conf",
              fmt::format("daemon off;\nworker_processes 1;\npid {0}/nginx.pid;\n"
                          "error_log {0}/error.log warn;\nevents {{ worker_connections 64; }}\n"
                          "http {{\n  access_log off;\n  client_body_temp_path {0}/tmp/body;\n"
                          "  proxy_temp_path {0}/tmp/proxy;\n  fastcgi_temp_path {0}/tmp/fcgi;\n"
                          "  uwsgi_temp_path {0}/tmp/uwsgi;\n  scgi_temp_path {0}/tmp/scgi;\n"
                          "  server {{\n    listen 127.0.0.1:{1};\n"
                          "    location / {{ return 200 'ok'; }}\n"
                          "    location /api/ {{ proxy_pass http://127.0.0.1:{2}; }}\n  }}\n}}\n",
                          nginx_dir, nginx_port, api_port));
    BackgroundProcess nginx({*nginx_bin, "-p", nginx_dir, "-e", nginx_dir + "/error.log", "-c",
                             nginx_dir + "/nginx.conf"},
                            dir.path() / "nginx.log");
    const auto nginx_url = "http://127.0.0.1:" + std::to_string(nginx_port);
    REQUIRE(wait_http_ok(nginx_url + "/api/tasks", std::chrono::seconds(20)));

    // Prometheus: task-api scrapes the real API; the other jobs of the stack scrape the
    // fixture's exposition so that every expected job exists.
    const int prom_port = free_port();
    std::string scrape = "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                         "scrape_configs:\n";
    for (const auto* job :
         {"prometheus", "otel-collector", "task-api", "tempo", "loki", "grafana"}) {
        const int port = std::string(job) == "task-api" ? api_port : stack.metrics_port();
        scrape += fmt::format("  - job_name: {}\n    static_configs:\n      - targets: "
                              "['127.0.0.1:{}']\n",
                              job, port);
    }
    const auto prom_config = dir.write("prometheus.yml", scrape);
    BackgroundProcess prometheus({*prom_bin, "--config.file=" + prom_config.string(),
                                  "--storage.tsdb.path=" + (dir.path() / "tsdb").string(),
                                  "--web.listen-address=127.0.0.1:" + std::to_string(prom_port),
                                  "--log.level=warn"},
                                 dir.path() / "prometheus.log");
    const auto prom_url = "http://127.0.0.1:" + std::to_string(prom_port);
    REQUIRE(wait_http_ok(prom_url + "/-/ready", std::chrono::seconds(30)));

    auto endpoints = stack.endpoints();
    endpoints["nginx"] = nginx_url;
    endpoints["api"] = api_url;
    endpoints["prometheus"] = prom_url;
    const auto lab = write_lab(dir, endpoints, {}, "30s");
    std::vector<std::string> checks{"stack.health", "prometheus.targets", "prometheus.sli",
                                    "grafana.provisioned"};
#ifdef VERIFY_OTLP_PROTO
    // The API's own spans and log records, decoded from its OTLP exports.
    checks.push_back("trace.e2e");
    checks.push_back("logs.correlated");
#endif
    {
        const auto run = run_verify(lab, only(checks));
        INFO(run.process.out << run.process.err << prometheus.log());
        REQUIRE(run.process.exit_code == 0);
        for (const auto& c : checks)
            CHECK(run.status(c) == "pass");
        CHECK(run.check("prometheus.targets").at("message").get<std::string>().find("task-api") !=
              std::string::npos);
#ifdef VERIFY_OTLP_PROTO
        // The API's real SERVER span continues labctl's traceparent and has SQL CLIENT children.
        CHECK(run.check("trace.e2e")
                  .at("message")
                  .get<std::string>()
                  .find("SERVER span 'POST /api/smoke/db' (service task-api)") !=
              std::string::npos);
#endif
        // The real Prometheus evaluated the real dashboards' 11 panel queries (the fake Grafana
        // serves stacks/lab/grafana/dashboards) and every one returned data.
        CHECK(run.check("grafana.provisioned")
                  .at("message")
                  .get<std::string>()
                  .find("11 panel queries return data") != std::string::npos);
    }
    CHECK(otlp_posts.load() > 0);

    // nginx.resilience: restart the backend while bounded traffic goes through nginx; the 502
    // window is reported and normal service is required afterwards.
    {
        labctl::verify::Options o;
        o.endpoints = endpoints;
        o.checks = {"nginx.resilience"};
        o.deadline = std::chrono::seconds(30);
        o.restart_backend = [&]() -> std::string {
            api.reset(); // SIGTERM; the port is closed until the new process listens
            std::this_thread::sleep_for(std::chrono::milliseconds(500));
            api = start_api();
            return wait_http_ok(api_url + "/health", std::chrono::seconds(20))
                       ? std::string()
                       : std::string("the task API did not come back");
        };
        const auto r = labctl::verify::run_checks(o).at(0);
        INFO(r.message);
        CHECK(r.status == labctl::verify::Status::pass);
        CHECK(r.message.find("requests failed during the restart (window") != std::string::npos);
        CHECK(r.message.find("; normal service after") != std::string::npos);
        REQUIRE_FALSE(r.evidence.empty());
        CHECK(r.evidence[0].note.find("x502") != std::string::npos); // nginx: bad gateway
        CHECK(r.duration < std::chrono::seconds(20));
    }

    // Stop the task API: Prometheus' next scrape (1 s) marks task-api down with lastError.
    api.reset();
    // verify reports what Prometheus knows: wait (bounded) for its next scrape of the API.
    bool down = false;
    for (int i = 0; i < 100 && !down; ++i) {
        const auto r = labctl::verify::http_get(prom_url + "/api/v1/targets?state=active",
                                                std::chrono::seconds(2));
        down = r.body.find("\"health\":\"down\"") != std::string::npos;
        if (!down)
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    REQUIRE(down);
    const auto lab_short = write_lab(dir, endpoints, {}, "5s");
    const auto run = run_verify(lab_short, only({"stack.health", "prometheus.targets"}));
    INFO(run.process.out << run.process.err);
    CHECK(run.process.exit_code == 8);
    const auto targets = run.check("prometheus.targets");
    CHECK(targets.at("status") == "fail");
    const auto tmsg = targets.at("message").get<std::string>();
    CHECK(tmsg.find(fmt::format("task-api (http://127.0.0.1:{}/metrics down:", api_port)) !=
          std::string::npos);
    CHECK(tmsg.find("connection refused") != std::string::npos);
    CHECK(tmsg.find("grafana (") == std::string::npos); // the other jobs stay up
    const auto health = run.check("stack.health");
    CHECK(health.at("status") == "fail");
    CHECK(health.at("message").get<std::string>().find("api (Connection refused)") !=
          std::string::npos);
    bool api_evidence = false;
    for (const auto& e : health.at("evidence"))
        if (e.at("url") == "GET " + api_url + "/health" && e.at("status") == 0)
            api_evidence = true;
    CHECK(api_evidence);
    // nginx itself still answers.
    CHECK(health.at("message").get<std::string>().find("nginx (") == std::string::npos);
}
