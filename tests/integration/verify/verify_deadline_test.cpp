// Deadlines: a check whose backend accepts connections but never answers fails at its own
// deadline, never before it and long before the run's own (20 s), while the other checks, running
// in parallel, still pass. The bounds are what the behaviour means, not a percentage of wall
// time: a shared 2-core machine may stall a few seconds, never by the 17 s that separate the two
// deadlines. nginx.resilience, which restarts the backend, runs only after every other check.

#include <algorithm>
#include <catch2/catch.hpp>
#include <mutex>

#include <labctl/verify/verify.hpp>

#include "fake_stack.hpp"
#include "verify_test_util.hpp"

using namespace labctl::test;
using namespace labctl::test::verify;

TEST_CASE("verify deadline: a check whose backend never answers fails at its deadline and the "
          "others still finish",
          "[verify][deadline][contract]") {
    FakeStack stack;
    BlackHole tempo;
    auto endpoints = stack.endpoints();
    endpoints["tempo"] = tempo.url();
    TempDir dir;
    const auto lab = write_lab(dir, endpoints, {{"trace.e2e", "3s"}}, "20s");
    const auto run = run_verify(lab, only({"prometheus.targets", "prometheus.sli", "trace.e2e",
                                           "logs.correlated", "grafana.provisioned"}));
    INFO(run.process.out << run.process.err);
    CHECK(run.process.exit_code == 8);
    const auto& trace = run.check("trace.e2e");
    CHECK(trace.at("status") == "fail");
    const double seconds = trace.at("seconds").get<double>();
    CHECK(seconds >= 2.9); // not before its deadline (the poll sleeps end 20 ms early)
    CHECK(seconds < 10.0); // at its own 3 s deadline, not at the run's 20 s one
    CHECK(trace.at("message").get<std::string>().rfind("deadline 3.0s reached", 0) == 0);
    CHECK(trace.at("message").get<std::string>().find("timed out") != std::string::npos);
    for (const auto* other :
         {"prometheus.targets", "prometheus.sli", "logs.correlated", "grafana.provisioned"})
        CHECK(run.status(other) == "pass");
    // The whole run is bounded by the slowest check (3 s), not by the run's 20 s deadline.
    CHECK(run.report.at("summary").at("seconds").get<double>() < 10.0);
}

TEST_CASE("verify deadline: --parallel 1 runs checks one after the other, each with its own "
          "deadline",
          "[verify][deadline][contract]") {
    FakeStack stack;
    BlackHole never;
    auto endpoints = stack.endpoints();
    endpoints["tempo"] = never.url();
    endpoints["loki"] = never.url();
    TempDir dir;
    const auto lab =
        write_lab(dir, endpoints, {{"trace.e2e", "2s"}, {"logs.correlated", "2s"}}, "20s");
    const auto run =
        run_verify(lab, {"--only", "trace.e2e", "--only", "logs.correlated", "--parallel", "1"});
    INFO(run.process.out << run.process.err);
    CHECK(run.process.exit_code == 8);
    CHECK(run.status("trace.e2e") == "fail");
    CHECK(run.status("logs.correlated") == "fail");
    const double wall = run.report.at("summary").at("seconds").get<double>();
    // Two 2 s deadlines one after the other: at least 4 s (in parallel it would be 2 s), and
    // nowhere near either check's 20 s fallback.
    CHECK(wall >= 3.9);
    CHECK(wall < 15.0);
}

TEST_CASE("verify: nginx.resilience, which restarts the backend, starts only after every other "
          "check has finished",
          "[verify][resilience][contract]") {
    FakeStack stack;
    labctl::verify::Options o;
    o.endpoints = stack.endpoints();
    o.checks = {"nginx.resilience", "stack.health", "prometheus.targets", "grafana.provisioned"};
    o.deadline = std::chrono::seconds(20);
    o.poll_interval = std::chrono::milliseconds(200);
    std::mutex m;
    std::vector<std::string> events;
    o.on_start = [&](const std::string& name) {
        std::lock_guard lock(m);
        events.push_back("start " + name);
    };
    o.on_result = [&](const labctl::verify::CheckResult& r) {
        std::lock_guard lock(m);
        events.push_back("end " + r.name);
    };
    o.restart_backend = [] {
        return std::string();
    };
    const auto results = labctl::verify::run_checks(o);
    REQUIRE(results.size() == 4);
    CHECK(results[0].name == "nginx.resilience"); // report order stays the requested order
    const auto at = [&](const std::string& e) {
        return std::find(events.begin(), events.end(), e) - events.begin();
    };
    for (const char* other : {"stack.health", "prometheus.targets", "grafana.provisioned"}) {
        CAPTURE(other);
        CHECK(at(std::string("end ") + other) < at("start nginx.resilience"));
    }
}
