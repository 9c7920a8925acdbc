// `labctl verify` against contract fixtures of Tempo, Loki, Grafana, the Collector and Prometheus
// that reproduce the upstream handlers (docs/UPSTREAM.md) of the original pin set unless a test
// picks the current one. The pin-set specific behaviours are in verify_pins_contract_test.cpp.

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include <labctl/verify/verify.hpp>

#include "fake_stack.hpp"
#include "verify_test_util.hpp"

using namespace labctl::test;
using namespace labctl::test::verify;

TEST_CASE("verify contract: all checks pass against Tempo v1 batches found after 3 polls, base64 "
          "ids and Loki 2.9 JSON bodies found after 2 polls",
          "[verify][contract]") {
    Quirks q;
    q.tempo_polls_before_found = 3;
    q.loki_polls_before_found = 2;
    FakeStack stack(q);
    TempDir dir;
    const auto lab = write_lab(dir, stack.endpoints());
    const auto run = run_verify(lab, only(k_http_checks));
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    for (const auto& c : k_http_checks)
        CHECK(run.status(c) == "pass");
    // Tempo answered 404 three times before the trace "arrived": verify kept polling.
    CHECK(stack.tempo_polls() >= 4);
    CHECK(run.check("trace.e2e").at("attempts").get<int>() >= 4);
    CHECK(run.check("trace.e2e").at("message").get<std::string>().find("1 DB CLIENT child") !=
          std::string::npos);
    // The fake API's log records reached Loki, which answers its push API with 204.
    CHECK(stack.loki_pushes_accepted() >= 2);
    CHECK(run.check("logs.correlated").at("message").get<std::string>().find("carry trace") !=
          std::string::npos);
    // Loki returned no line twice (ingestion delay): verify kept polling.
    CHECK(run.check("logs.correlated").at("attempts").get<int>() >= 3);
    // The real dashboards: the Tempo and Loki panels are not sent to Prometheus, the SLO
    // dashboard's 11 expressions are, and every one returns data.
    CHECK(run.check("grafana.provisioned")
              .at("message")
              .get<std::string>()
              .find("11 panel queries return data") != std::string::npos);
    CHECK(run.report.at("ok") == true);
    CHECK(run.report.at("summary").at("passed") == 6);
}

TEST_CASE("verify contract: Tempo v2 trace.resourceSpans and Loki 3.x structured metadata are "
          "understood",
          "[verify][contract]") {
    Quirks q;
    q.pins = PinSet::current; // Tempo 2.10.8 /api/v2/traces, Loki 3.7.6 native OTLP
    q.tempo_polls_before_found = 1;
    FakeStack stack(q);
    TempDir dir;
    const auto lab = write_lab(dir, stack.endpoints());
    const auto run = run_verify(lab, only({"trace.e2e", "logs.correlated"}));
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    CHECK(run.status("trace.e2e") == "pass");
    CHECK(run.status("logs.correlated") == "pass");
}

TEST_CASE("verify contract: a trace id with leading zeros is matched although Tempo search strips "
          "them and spans carry base64 ids",
          "[verify][contract]") {
    Quirks q;
    q.tempo_polls_before_found = 0;
    FakeStack stack(q);
    labctl::verify::Options o;
    o.endpoints = stack.endpoints();
    o.checks = {"trace.e2e"};
    o.deadline = std::chrono::seconds(10);
    o.poll_interval = std::chrono::milliseconds(200);
    o.trace_id = "0000000000a1b2c3d4e5f60718293a4b";
    const auto results = labctl::verify::run_checks(o);
    REQUIRE(results.size() == 1);
    INFO(results[0].message);
    CHECK(results[0].status == labctl::verify::Status::pass);
    bool listed = false;
    for (const auto& e : results[0].evidence)
        listed = listed || e.note == "search lists the trace";
    CHECK(listed);
    REQUIRE(stack.traces().size() == 1);
    CHECK(stack.traces()[0] == o.trace_id);
}

TEST_CASE("verify contract: Grafana datasource health 400 with status ERROR fails "
          "grafana.provisioned naming the datasource",
          "[verify][contract]") {
    Quirks q;
    // Tempo has no backend health check at either pin (verify_pins_contract_test); Loki has one.
    q.grafana_health_error_uid = "loki";
    FakeStack stack(q);
    TempDir dir;
    const auto lab = write_lab(dir, stack.endpoints(), {{"grafana.provisioned", "3s"}});
    const auto run = run_verify(lab, only({"grafana.provisioned", "stack.health"}));
    INFO(run.process.out << run.process.err);
    CHECK(run.process.exit_code == 8);
    CHECK(run.status("stack.health") == "pass");
    REQUIRE(run.status("grafana.provisioned") == "fail");
    const auto msg = run.check("grafana.provisioned").at("message").get<std::string>();
    CHECK(msg.find("datasource 'loki' health ERROR") != std::string::npos);
    CHECK(msg.find("datasource 'prometheus'") == std::string::npos);
}

TEST_CASE("verify contract: a panel query Prometheus rejects with 400 bad_data fails at once "
          "naming the dashboard and the panel",
          "[verify][contract]") {
    Quirks q;
    q.broken_panel = true;
    FakeStack stack(q);
    TempDir dir;
    const auto lab = write_lab(dir, stack.endpoints());
    const auto run = run_verify(lab, only({"grafana.provisioned"}));
    INFO(run.process.out << run.process.err);
    CHECK(run.process.exit_code == 8);
    const auto& c = run.check("grafana.provisioned");
    CHECK(c.at("status") == "fail");
    const auto msg = c.at("message").get<std::string>();
    CHECK(msg.find("SLI/SLO Dashboard - Task Manager") != std::string::npos);
    CHECK(msg.find("panel 'Error budget'") != std::string::npos);
    CHECK(msg.find("bad_data") != std::string::npos);
    // A broken query does not heal by waiting: no polling until the 20 s deadline.
    CHECK(c.at("seconds").get<double>() < 5.0);
}

TEST_CASE("verify contract: the human report has a CHECK STATUS TIME EVIDENCE table and a summary "
          "line, and --skip wins over --only",
          "[verify][contract]") {
    FakeStack stack;
    TempDir dir;
    const auto lab = write_lab(dir, stack.endpoints());
    const auto r =
        run_labctl({"-f", lab.string(), "verify", "--host", "127.0.0.1", "--only", "stack.health",
                    "--only", "prometheus.targets", "--skip", "prometheus.targets"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.rfind("CHECK", 0) == 0);
    CHECK(r.out.find("STATUS") != std::string::npos);
    CHECK(r.out.find("EVIDENCE") != std::string::npos);
    CHECK(r.out.find("stack.health") != std::string::npos);
    CHECK(r.out.find("PASS") != std::string::npos);
    CHECK(r.out.find("prometheus.targets") == std::string::npos);
    CHECK(r.out.find("1 passed, 0 failed, 0 skipped in") != std::string::npos);
}

TEST_CASE(
    "verify writes a progress event with the check, its attempt, the time left and why not yet "
    "while a check polls past 10 s (no terminal)",
    "[verify][contract][progress]") {
    // The collector's health check answers 503 "Server not available" until it is ready
    // (open-telemetry/opentelemetry-collector-contrib@v0.96.0:
    // extension/healthcheckextension/internal/healthcheck/handler.go; fake_stack.cpp).
    Quirks q;
    q.collector_unavailable = true;
    FakeStack stack(q);
    TempDir dir;
    const auto lab = write_lab(dir, stack.endpoints(), {{"stack.health", "12s"}});
    const auto r = run_labctl({"-f", lab.string(), "--log-format", "json", "verify", "--host",
                               "127.0.0.1", "--only", "stack.health"},
                              {.timeout = std::chrono::seconds(60)});
    INFO(r.err);
    CHECK(r.exit_code == 8);
    bool seen = false;
    std::istringstream lines(r.err);
    for (std::string line; std::getline(lines, line);) {
        const auto j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() || j.value("progress", "") != "verify stack.health")
            continue;
        seen = true;
        CHECK(j.value("check", "") == "stack.health");
        CHECK(std::stoi(j.value("attempt", "0")) > 1);
        CHECK(j.value("msg", "").find("left: ") != std::string::npos);
        CHECK(j.value("msg", "").find("collector") != std::string::npos); // why not yet
    }
    CHECK(seen);
}

TEST_CASE("verify contract: a collector whose health_check answers 503 Server not available fails "
          "stack.health naming the collector",
          "[verify][contract]") {
    Quirks q;
    q.collector_unavailable = true;
    FakeStack stack(q);
    TempDir dir;
    const auto lab = write_lab(dir, stack.endpoints(), {{"stack.health", "2s"}});
    const auto run = run_verify(lab, only({"stack.health"}));
    INFO(run.process.out << run.process.err);
    CHECK(run.process.exit_code == 8);
    const auto& c = run.check("stack.health");
    CHECK(c.at("status") == "fail");
    const auto msg = c.at("message").get<std::string>();
    CHECK(msg.find("not healthy: collector (HTTP 503: ") != std::string::npos);
    CHECK(msg.find("Server not available") != std::string::npos);
    CHECK(msg.find("tempo") == std::string::npos); // the other six are healthy
    CHECK(c.at("evidence")[0].at("status") == 503);
}

TEST_CASE("verify contract: a lab without a collector lists its services and jobs in lab.yaml, "
          "and stack.health and prometheus.targets pass without it",
          "[verify][contract]") {
    Quirks q;
    q.collector_unavailable = true;      // stands for "not deployed": nothing healthy answers there
    q.jobs = {"prometheus", "task-api"}; // what stacks/lab-offline's Prometheus scrapes
    FakeStack stack(q);
    TempDir dir;
    const auto lab = write_lab(dir, stack.endpoints(), {{"stack.health", "5s"}});
    {
        std::ofstream out(lab, std::ios::app);
        out << "  services: [api, nginx, prometheus]\n"
               "  prometheus_jobs: [prometheus, task-api]\n";
    }
    const auto run = run_verify(lab, only({"stack.health", "prometheus.targets"}));
    INFO(run.process.out << run.process.err);
    CHECK(run.process.exit_code == 0);
    const auto& health = run.check("stack.health");
    CHECK(health.at("status") == "pass");
    CHECK(health.at("message") == "3 services healthy (api, nginx, prometheus)");
    CHECK(health.at("evidence").size() == 3);
    const auto& targets = run.check("prometheus.targets");
    CHECK(targets.at("status") == "pass");
    CHECK(targets.at("message") == "all 2 jobs up: prometheus, task-api");
}

TEST_CASE("verify contract: labctl verify signs in to Grafana with the lab's generated admin "
          "password from .labctl and never prints it",
          "[verify][contract][grafana]") {
    Quirks q;
    FakeStack stack(q);
    TempDir dir;
    const auto lab = write_lab(dir, stack.endpoints());
    const auto secret =
        dir.write(".labctl/grafana-admin-password", q.grafana_admin_password + "\n");
    std::filesystem::permissions(secret, std::filesystem::perms::owner_read |
                                             std::filesystem::perms::owner_write);
    const auto run = run_verify(lab, only({"grafana.provisioned"}));
    INFO(run.process.out << run.process.err);
    CHECK(run.process.exit_code == 0);
    CHECK(stack.grafana_authorized_requests() > 0);
    CHECK(run.process.out.find(q.grafana_admin_password) == std::string::npos);
    CHECK(run.process.err.find(q.grafana_admin_password) == std::string::npos);
}
