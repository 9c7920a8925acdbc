// Faults of the services verify reads, against servers on 127.0.0.1: every one that answers 200
// with a body that is not the JSON its API promises (cut short, or valid JSON of another shape),
// and Prometheus and Grafana endpoints that accept connections and never answer. Each check fails
// (never crashes, never passes) with a message naming the service and what was wrong with its
// answer, within its own deadline; the run exits 8 with a report and leaves nothing behind.

#include <catch2/catch.hpp>
#include <chrono>

#include "fake_stack.hpp"
#include "fault_support.hpp"
#include "verify_test_util.hpp"

using namespace labctl::test;
using namespace labctl::test::verify;

namespace {

/// What each check that reads JSON must say when every service gives it `body`: the service's
/// name and then what was wrong, as in "Tempo: HTTP 200, not valid JSON: …".
const std::vector<std::pair<std::string, std::vector<std::string>>> k_json_readers{
    {"stack.health", {"collector (HTTP 200, ", "grafana (HTTP 200, "}},
    {"prometheus.targets", {"Prometheus targets API: HTTP 200, "}},
    {"prometheus.sli", {"Prometheus query API: HTTP 200, "}},
    {"trace.e2e", {"Tempo: HTTP 200, "}},
    {"logs.correlated", {"Loki: HTTP 200, "}},
    {"grafana.provisioned", {"Grafana HTTP 200, "}},
};

/// Every service answers 200 with `body`; each check must fail within its 3 s deadline, its
/// message naming the service followed by `what` ("not valid JSON", "JSON of an unexpected
/// shape"), the run exits 8 and no process or file is left behind.
void every_service_answers(const std::string& body, const std::string& what) {
    FixtureServer broken([&body](const Request&) { return Reply{200, body}; });
    std::map<std::string, std::string> endpoints;
    for (const auto& name : {"nginx", "api", "grafana", "prometheus", "tempo", "loki", "collector"})
        endpoints[name] = broken.url();
    TempDir dir;
    const auto lab = write_lab(dir, endpoints, {}, "3s");
    const auto t0 = std::chrono::steady_clock::now();
    const auto run = run_verify(lab, only(k_http_checks));
    const auto took = std::chrono::steady_clock::now() - t0;
    INFO("body: " << body << "\n" << run.process.out << run.process.err);
    CHECK(run.process.exit_code == 8);
    REQUIRE(run.report.is_object());
    for (const auto& name : k_http_checks) {
        CAPTURE(name);
        CHECK(run.status(name) == "fail");
        CHECK(run.check(name).at("seconds").get<double>() < 10.0);
    }
    for (const auto& [check, services] : k_json_readers) {
        const auto message = run.check(check).at("message").get<std::string>();
        for (const auto& service : services) {
            CAPTURE(check, message);
            CHECK(message.find(service + what) != std::string::npos);
        }
        CHECK(message.find("check aborted") == std::string::npos);
    }
    CHECK(run.process.err.find("internal error") == std::string::npos);
    CHECK(took < std::chrono::seconds(30)); // the checks ran at once, each within its 3 s
    // Nothing left behind: labctl and whatever it started are gone, and it wrote no file.
    CHECK(children_of_self().empty());
    std::vector<std::string> files;
    for (const auto& e : std::filesystem::directory_iterator(dir.path()))
        files.push_back(e.path().filename().string());
    CHECK(files == std::vector<std::string>{"lab.yaml"});
}

} // namespace

TEST_CASE("verify fault: every service answering 200 with malformed JSON fails each check, "
          "named, within its deadline",
          "[verify][fault]") {
    // A truncated JSON document, as a proxy that cut the body would give.
    every_service_answers(R"({"status":"succ)", "not valid JSON");
}

TEST_CASE("verify fault: every service answering 200 with valid JSON of another shape fails each "
          "check, named, saying the shape is unexpected",
          "[verify][fault]") {
    SECTION("an array where every API answers an object") {
        every_service_answers(R"(["not","an","object"])", "JSON of an unexpected shape");
    }
    SECTION("an object whose documented members have other types") {
        // status, database, activeTargets, result, batches, provisioned: each of the wrong type.
        every_service_answers(
            R"({"status":1,"database":true,)"
            R"("data":{"activeTargets":{},"result":"x"},"batches":{},)"
            R"("dashboard":{"title":9,"panels":"p"},"meta":{"provisioned":"yes"}})",
            "JSON of an unexpected shape");
    }
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
    // Nothing left behind: labctl and whatever it started are gone, and it wrote no file.
    CHECK(children_of_self().empty());
    std::vector<std::string> files;
    for (const auto& e : std::filesystem::directory_iterator(dir.path()))
        files.push_back(e.path().filename().string());
    CHECK(files == std::vector<std::string>{"lab.yaml"});
}
