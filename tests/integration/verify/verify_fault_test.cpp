// Faults of the services verify reads, against servers on 127.0.0.1: every one that answers 200
// with a body that is not the JSON its API promises, and Prometheus and Grafana endpoints that
// accept connections and never answer. Each check fails (never crashes, never passes) naming
// the service, within its own deadline, and the run exits 8 with a report.

#include <catch2/catch.hpp>
#include <chrono>

#include "fake_stack.hpp"
#include "verify_test_util.hpp"

using namespace labctl::test;
using namespace labctl::test::verify;

TEST_CASE("verify fault: every service answering 200 with malformed JSON fails each check, "
          "named, within its deadline",
          "[verify][fault]") {
    // A truncated JSON document, as a proxy that cut the body would give.
    FixtureServer broken([](const Request&) { return Reply{200, R"({"status":"succ)"}; });
    std::map<std::string, std::string> endpoints;
    for (const auto& name : {"nginx", "api", "grafana", "prometheus", "tempo", "loki", "collector"})
        endpoints[name] = broken.url();
    TempDir dir;
    const auto lab = write_lab(dir, endpoints, {}, "3s");
    const auto t0 = std::chrono::steady_clock::now();
    const auto run = run_verify(lab, only(k_http_checks));
    const auto took = std::chrono::steady_clock::now() - t0;
    INFO(run.process.out << run.process.err);
    CHECK(run.process.exit_code == 8);
    REQUIRE(run.report.is_object());
    for (const auto& name : k_http_checks) {
        CAPTURE(name);
        CHECK(run.status(name) == "fail");
        CHECK(run.check(name).at("seconds").get<double>() < 10.0);
    }
    const auto msg = [&](const std::string& c) {
        return run.check(c).at("message").get<std::string>();
    };
    CHECK(msg("stack.health").find("collector") != std::string::npos);
    CHECK(msg("stack.health").find("grafana") != std::string::npos);
    CHECK(msg("prometheus.targets").find("targets API") != std::string::npos);
    CHECK(run.process.err.find("internal error") == std::string::npos);
    CHECK(took < std::chrono::seconds(30)); // the checks ran at once, each within its 3 s
}

TEST_CASE("verify fault: Prometheus and Grafana accepting connections and never answering fail "
          "their checks at the deadline, the others pass",
          "[verify][fault]") {
    FakeStack stack;
    BlackHole prometheus, grafana;
    auto endpoints = stack.endpoints();
    endpoints["prometheus"] = prometheus.url();
    endpoints["grafana"] = grafana.url();
    TempDir dir;
    const auto lab = write_lab(dir, endpoints, {}, "3s");
    const auto run = run_verify(
        lab, only({"prometheus.targets", "prometheus.sli", "grafana.provisioned", "trace.e2e"}));
    INFO(run.process.out << run.process.err);
    CHECK(run.process.exit_code == 8);
    REQUIRE(run.report.is_object());
    for (const auto* stalled : {"prometheus.targets", "prometheus.sli", "grafana.provisioned"}) {
        CAPTURE(stalled);
        CHECK(run.status(stalled) == "fail");
        const double s = run.check(stalled).at("seconds").get<double>();
        CHECK(s >= 2.9); // it kept trying until its deadline
        CHECK(s < 10.0); // and no request outlived it
        CHECK(run.check(stalled).at("message").get<std::string>().rfind("deadline 3.0s reached",
                                                                        0) == 0);
    }
    CHECK(run.status("trace.e2e") == "pass");
}
