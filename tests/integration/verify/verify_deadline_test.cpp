// Deadlines: a check whose backend accepts connections but never answers fails at its own
// deadline (±10 %), not later, while the other checks, running in parallel, still pass.

#include <catch2/catch.hpp>

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
    CHECK(seconds >= 2.7);
    CHECK(seconds <= 3.3);
    CHECK(trace.at("message").get<std::string>().rfind("deadline 3.0s reached", 0) == 0);
    CHECK(trace.at("message").get<std::string>().find("timed out") != std::string::npos);
    for (const auto* other :
         {"prometheus.targets", "prometheus.sli", "logs.correlated", "grafana.provisioned"})
        CHECK(run.status(other) == "pass");
    // The whole run is bounded by the slowest check, not by the sum.
    CHECK(run.report.at("summary").at("seconds").get<double>() <= 3.3 + 1.0);
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
    // Two 2 s deadlines one after the other.
    CHECK(wall >= 3.6);
    CHECK(wall <= 4.8);
}
