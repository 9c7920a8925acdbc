// `labctl verify` against the fixtures of both pin sets (fake_stack.hpp, docs/UPSTREAM.md): the
// upstream behaviours that differ between Grafana 10.2.3 / Tempo 2.3.1 / Loki 2.9.3 and the
// current set, and the "parses is not works" rules for panel and SLI queries.

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include <labctl/verify/http.hpp>
#include <labctl/verify/verify.hpp>

#include "fake_stack.hpp"
#include "verify_test_util.hpp"

using namespace labctl::test;
using namespace labctl::test::verify;
namespace lv = labctl::verify;

namespace {

lv::Options options_for(const FakeStack& stack, std::vector<std::string> checks,
                        std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
    lv::Options o;
    o.endpoints = stack.endpoints();
    o.checks = std::move(checks);
    o.deadline = deadline;
    o.poll_interval = std::chrono::milliseconds(200);
    return o;
}

lv::CheckResult run_one(const lv::Options& o) {
    const auto results = lv::run_checks(o);
    REQUIRE(results.size() == 1);
    return results[0];
}

bool has_note(const lv::CheckResult& r, const std::string& part) {
    for (const auto& e : r.evidence)
        if (e.note.find(part) != std::string::npos)
            return true;
    return false;
}

bool has_url(const lv::CheckResult& r, const std::string& part) {
    for (const auto& e : r.evidence)
        if (e.url.find(part) != std::string::npos)
            return true;
    return false;
}

bool logged(const FakeStack& stack, const std::string& line) {
    for (const auto& l : stack.grafana_requests())
        if (l == line)
            return true;
    return false;
}

std::vector<std::string> dashboard_exprs(const std::string& uid) {
    std::ifstream in(std::string(LABCTL_SOURCE_DIR) + "/stacks/lab/grafana/dashboards/" + uid +
                     ".json");
    std::stringstream ss;
    ss << in.rdbuf();
    const auto j = nlohmann::json::parse(ss.str());
    std::vector<std::string> out;
    for (const auto& p : j.at("panels"))
        for (const auto& t : p.value("targets", nlohmann::json::array()))
            if (t.contains("expr"))
                out.push_back(t.at("expr").get<std::string>());
    return out;
}

/// Runs every HTTP check through the CLI against `q`'s fixtures, requires them all to pass and
/// returns grafana.provisioned's message.
std::string grafana_message_of_passing_run(const Quirks& q) {
    FakeStack stack(q);
    TempDir dir;
    const auto run = run_verify(write_lab(dir, stack.endpoints()), only(k_http_checks));
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    for (const auto& c : k_http_checks)
        CHECK(run.status(c) == "pass");
    return run.check("grafana.provisioned").at("message").get<std::string>();
}

} // namespace

TEST_CASE("verify contract: all HTTP checks pass against the original pin set's fixtures "
          "(Grafana 10.2.3, Tempo 2.3.1, Loki 2.9.3, collector 0.96.0, Prometheus 2.48.1)",
          "[verify][contract][pins]") {
    Quirks q;
    q.pins = PinSet::original;
    q.tempo_polls_before_found = 1;
    CHECK(grafana_message_of_passing_run(q).find("tempo (datasource proxy /api/echo)") !=
          std::string::npos);
}

TEST_CASE("verify contract: all HTTP checks pass against the current pin set's fixtures "
          "(Grafana 12.3.1, Tempo 2.10.8, Loki 3.7.6, collector 0.159.0, Prometheus 3.14.0)",
          "[verify][contract][pins]") {
    Quirks q;
    q.pins = PinSet::current;
    q.tempo_polls_before_found = 1;
    q.loki_polls_before_found = 1;
    CHECK(grafana_message_of_passing_run(q).find("11 panel queries return data") !=
          std::string::npos);
}

TEST_CASE("verify contract: Grafana 10.2.3's Tempo datasource health 404 Not found is proven "
          "through the datasource proxy /api/echo",
          "[verify][contract][grafana]") {
    Quirks q;
    q.pins = PinSet::original;
    FakeStack stack(q);
    const auto r = run_one(options_for(stack, {"grafana.provisioned"}));
    INFO(r.message);
    CHECK(r.status == lv::Status::pass);
    CHECK(logged(stack, "GET /api/datasources/uid/tempo/health 404"));
    CHECK(logged(stack, "GET /api/datasources/proxy/uid/tempo/api/echo 200"));
    // Prometheus and Loki have a backend CheckHealth: no proxy for them.
    CHECK(logged(stack, "GET /api/datasources/uid/prometheus/health 200"));
    CHECK_FALSE(logged(stack, "GET /api/datasources/proxy/uid/prometheus/api/echo 200"));
    CHECK(has_note(r, "tempo has no backend health check (HTTP 404: Not found)"));
    CHECK(has_note(r, "tempo OK through the datasource proxy"));
    CHECK(r.message.find("tempo (datasource proxy /api/echo)") != std::string::npos);
    CHECK(r.message.find("prometheus (backend health check)") != std::string::npos);
}

TEST_CASE("verify contract: current Grafana's Tempo health 501 plugin.notImplemented also falls "
          "back to the datasource proxy",
          "[verify][contract][grafana]") {
    Quirks q;
    q.pins = PinSet::current;
    FakeStack stack(q);
    const auto r = run_one(options_for(stack, {"grafana.provisioned"}));
    INFO(r.message);
    CHECK(r.status == lv::Status::pass);
    CHECK(logged(stack, "GET /api/datasources/uid/tempo/health 501"));
    CHECK(logged(stack, "GET /api/datasources/proxy/uid/tempo/api/echo 200"));
    CHECK(has_note(r, "tempo has no backend health check (HTTP 501: Not implemented)"));
}

TEST_CASE("verify contract: a datasource proxy that cannot reach Tempo fails grafana.provisioned "
          "naming the datasource and the proxy path",
          "[verify][contract][grafana]") {
    Quirks q;
    q.grafana_proxy_fails = true;
    FakeStack stack(q);
    const auto r = run_one(options_for(stack, {"grafana.provisioned"}, std::chrono::seconds(2)));
    INFO(r.message);
    CHECK(r.status == lv::Status::fail);
    CHECK(r.message.find("datasource 'tempo' has no backend health check (HTTP 404: Not found) "
                         "and the datasource proxy /api/datasources/proxy/uid/tempo/api/echo "
                         "failed (HTTP 502") != std::string::npos);
    CHECK(r.message.find("datasource 'prometheus'") == std::string::npos);
}

TEST_CASE("verify contract: an anonymous Viewer's 403 on datasource settings is not a failure, "
          "and with Grafana credentials verify reads them with basic auth and never records "
          "the password",
          "[verify][contract][grafana]") {
    Quirks q;
    FakeStack stack(q);
    SECTION("anonymous") {
        const auto r = run_one(options_for(stack, {"grafana.provisioned"}));
        INFO(r.message);
        CHECK(r.status == lv::Status::pass);
        CHECK(logged(stack, "GET /api/datasources/uid/tempo 403"));
        CHECK(has_note(r, "settings not readable by verify's Grafana user (403)"));
        CHECK(stack.grafana_authorized_requests() == 0);
    }
    SECTION("admin credentials") {
        auto o = options_for(stack, {"grafana.provisioned"});
        o.grafana_user = q.grafana_admin_user;
        o.grafana_password = q.grafana_admin_password;
        const auto r = run_one(o);
        INFO(r.message);
        CHECK(r.status == lv::Status::pass);
        CHECK(logged(stack, "GET /api/datasources/uid/tempo 200"));
        CHECK(stack.grafana_authorized_requests() > 0);
        CHECK(r.message.find(q.grafana_admin_password) == std::string::npos);
        for (const auto& e : r.evidence) {
            CHECK(e.url.find(q.grafana_admin_password) == std::string::npos);
            CHECK(e.excerpt.find(q.grafana_admin_password) == std::string::npos);
            CHECK(e.note.find(q.grafana_admin_password) == std::string::npos);
        }
    }
    SECTION("wrong credentials") {
        auto o = options_for(stack, {"grafana.provisioned"}, std::chrono::seconds(2));
        o.grafana_user = "admin";
        o.grafana_password = "not-the-password";
        const auto r = run_one(o);
        INFO(r.message);
        CHECK(r.status == lv::Status::fail);
        CHECK(r.message.find("datasource 'prometheus' missing (HTTP 401") != std::string::npos);
        CHECK(r.message.find("not-the-password") == std::string::npos);
    }
}

TEST_CASE("verify contract: a panel query that returns no series after verify's traffic fails "
          "grafana.provisioned at the deadline naming dashboard, panel and query",
          "[verify][contract][grafana]") {
    Quirks q;
    q.absent_metrics = {"db_query_duration_seconds_bucket"};
    FakeStack stack(q);
    const auto r = run_one(options_for(stack, {"grafana.provisioned"}, std::chrono::seconds(2)));
    INFO(r.message);
    CHECK(r.status == lv::Status::fail);
    CHECK(r.message.rfind("deadline", 0) == 0); // it kept polling: rate() may need scrapes
    CHECK(r.message.find("1 panel query returned no series after verify's traffic: dashboard "
                         "'SLI/SLO Dashboard - Task Manager' (sli-slo-dashboard) panel 'Database "
                         "Query P95 by Operation': 'histogram_quantile(0.95, "
                         "sum(rate(db_query_duration_seconds_bucket[5m])) by (le, operation))'") !=
          std::string::npos);
    CHECK(r.attempts >= 2);
}

TEST_CASE("verify contract: prometheus.sli with an SLI query that returns no series fails naming "
          "the query",
          "[verify][contract][prometheus]") {
    Quirks q;
    q.absent_metrics = {"db_query_duration_seconds_bucket"};
    FakeStack stack(q);
    const auto r = run_one(options_for(stack, {"prometheus.sli"}, std::chrono::seconds(2)));
    INFO(r.message);
    CHECK(r.status == lv::Status::fail);
    CHECK(
        r.message.find("1 of 11 SLI queries returned no series after verify's traffic: "
                       "'histogram_quantile(0.95, sum(rate(db_query_duration_seconds_bucket[5m])) "
                       "by (le, operation))'") != std::string::npos);
}

TEST_CASE("verify contract: verify's own traffic is only successful requests and includes one DB "
          "smoke request, so no error series is created",
          "[verify][contract][prometheus]") {
    FakeStack stack;
    const auto r = run_one(options_for(stack, {"prometheus.sli"}));
    INFO(r.message);
    CHECK(r.status == lv::Status::pass);
    CHECK(r.message == "11 SLI queries return data");
    // The fake Prometheus models the absent counter: still no http_errors_total series.
    const auto errors = lv::http_get(stack.endpoints().at("prometheus") + "/api/v1/query?query=" +
                                         lv::url_encode("http_errors_total"),
                                     std::chrono::seconds(2));
    CHECK(errors.body.find(R"("result":[])") != std::string::npos);
}

TEST_CASE("verify contract: the fake Prometheus answers result [] for series that do not exist "
          "(the original availability gauge), a series once they do, and 400 bad_data for "
          "unparsable input",
          "[verify][contract][prometheus]") {
    FakeStack stack;
    const auto prom = stack.endpoints().at("prometheus");
    const auto api = stack.endpoints().at("nginx");
    const auto query = [&](const std::string& expr) {
        return lv::http_get(prom + "/api/v1/query?query=" + lv::url_encode(expr),
                            std::chrono::seconds(2));
    };
    const std::string old_availability =
        "100 * (1 - (sum(rate(http_errors_total[5m])) / sum(rate(http_requests_total[5m]))))";
    const std::string new_availability = lv::sli_queries().front();
    CHECK(query("sum(rate(http_requests_total[5m]))").body.find(R"("result":[])") !=
          std::string::npos); // no request yet
    REQUIRE(lv::http_get(api + "/api/tasks", std::chrono::seconds(2)).status == 200);
    CHECK(query(new_availability).body.find(R"("result":[{)") != std::string::npos);
    // Issue 13 item 2: without any error the original gauge has no data.
    CHECK(query(old_availability).body.find(R"("result":[])") != std::string::npos);
    REQUIRE(lv::http_get(api + "/api/nope", std::chrono::seconds(2)).status == 404);
    CHECK(query(old_availability).body.find(R"("result":[{)") != std::string::npos);
    // A 404 is not a 5xx: the 5xx selector still has no series, `or vector(0)` answers.
    CHECK(query(R"(http_requests_total{status_code=~"5.."})").body.find(R"("result":[])") !=
          std::string::npos);
    const auto bad = query("sum(rate(http_requests_total[5m])");
    CHECK(bad.status == 400);
    CHECK(bad.body.find(R"("errorType":"bad_data")") != std::string::npos);
}

TEST_CASE("verify contract: sli_queries() are exactly the SLO dashboard's panel expressions",
          "[verify][contract]") {
    CHECK(dashboard_exprs("sli-slo-dashboard") == lv::sli_queries());
}

TEST_CASE("verify contract: Loki 3 structured metadata trace_id is found in the categorize-labels "
          "form and in the merged stream-labels form",
          "[verify][contract][loki]") {
    Quirks q;
    q.pins = PinSet::current;
    q.tempo_polls_before_found = 0;
    SECTION("categorize-labels") {
        FakeStack stack(q);
        const auto r = run_one(options_for(stack, {"logs.correlated"}));
        INFO(r.message);
        CHECK(r.status == lv::Status::pass);
    }
    SECTION("merged into the stream labels") {
        q.loki_ignores_encoding_flags = true;
        FakeStack stack(q);
        const auto r = run_one(options_for(stack, {"logs.correlated"}));
        INFO(r.message);
        CHECK(r.status == lv::Status::pass);
    }
    SECTION("the fixture answers both forms as Loki 3.7.6 encodes them") {
        FakeStack stack(q);
        const auto api = stack.endpoints().at("nginx");
        lv::HttpRequest traced;
        traced.url = api + "/api/tasks";
        traced.headers["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        REQUIRE(lv::http_request(traced).status == 200);
        lv::HttpRequest req;
        req.url = stack.endpoints().at("loki") + "/loki/api/v1/query_range?query=" +
                  lv::url_encode(
                      R"({service_name="task-api"} | trace_id="4bf92f3577b34da6a3ce929d0e0e4736")");
        const auto merged = lv::http_request(req);
        CHECK(
            merged.body.find(
                R"("stream":{"deployment_environment":"lab","service_name":"task-api","span_id":)") !=
            std::string::npos);
        req.headers["X-Loki-Response-Encoding-Flags"] = "categorize-labels";
        const auto categorized = lv::http_request(req);
        CHECK(categorized.body.find(
                  R"("stream":{"deployment_environment":"lab","service_name":"task-api"})") !=
              std::string::npos);
        CHECK(categorized.body.find(R"("structuredMetadata":{"span_id")") != std::string::npos);
        CHECK(categorized.body.find(R"("encodingFlags":["categorize-labels"])") !=
              std::string::npos);
    }
}

TEST_CASE("verify contract: trace.e2e reads Tempo 2.10.8's /api/v2/traces and falls back to "
          "/api/traces on Tempo 2.3.1, whose router has no v2 route",
          "[verify][contract][tempo]") {
    for (const auto pins : {PinSet::original, PinSet::current}) {
        Quirks q;
        q.pins = pins;
        q.tempo_polls_before_found = 1;
        FakeStack stack(q);
        const auto r = run_one(options_for(stack, {"trace.e2e"}));
        INFO(to_string(pins) << ": " << r.message);
        CHECK(r.status == lv::Status::pass);
        const bool v2_answered = has_note(r, "(v2)") && pins == PinSet::current;
        if (pins == PinSet::current)
            CHECK(v2_answered);
        else
            CHECK(has_url(r, "/api/traces/"));
    }
}
