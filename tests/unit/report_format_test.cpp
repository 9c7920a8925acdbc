// The reports of `labctl verify`: human table, JSON schema, JUnit XML structure and escaping.

#include <catch2/catch.hpp>

#include <labctl/core/text.hpp>
#include <labctl/report/report.hpp>
#include <labctl/verify/verify.hpp>

using namespace labctl;
using verify::CheckResult;
using verify::Status;

namespace {
std::vector<CheckResult> sample() {
    CheckResult ok;
    ok.name = "stack.health";
    ok.status = Status::pass;
    ok.duration = std::chrono::milliseconds(1234);
    ok.message = "7 services healthy";
    ok.attempts = 1;
    ok.evidence.push_back({"GET http://h:9090/-/ready", 200, "Prometheus is Ready.", "prometheus"});
    CheckResult bad;
    bad.name = "prometheus.targets";
    bad.status = Status::fail;
    bad.duration = std::chrono::milliseconds(5000);
    bad.message = "not up: task-api (http://a:5000/metrics down: connection refused <&>\")";
    bad.attempts = 5;
    bad.evidence.push_back({"GET http://h:9090/api/v1/targets?state=active", 200,
                            "{\"status\":\"success\"}", "5 of 6 jobs up"});
    CheckResult skipped;
    skipped.name = "ssh.hardened";
    skipped.status = Status::skip;
    skipped.message = "no SSH settings";
    return {ok, bad, skipped};
}
} // namespace

TEST_CASE("report: the human table has CHECK STATUS TIME EVIDENCE, failure details and a summary",
          "[report][unit]") {
    const auto results = sample();
    const auto s = report::summarize(results, std::chrono::milliseconds(5100));
    CHECK(s.passed == 1);
    CHECK(s.failed == 1);
    CHECK(s.skipped == 1);
    CHECK_FALSE(s.ok());
    const auto text = report::human(results, s);
    INFO(text);
    CHECK(text.rfind("CHECK" + std::string(15, ' ') + "STATUS  TIME  EVIDENCE\n", 0) == 0);
    CHECK(text.find("stack.health        PASS    1.2s  7 services healthy") != std::string::npos);
    CHECK(text.find("prometheus.targets  FAIL    5.0s") != std::string::npos);
    CHECK(text.find("ssh.hardened        SKIP") != std::string::npos);
    CHECK(text.find("  GET http://h:9090/api/v1/targets?state=active -> 200: 5 of 6 jobs up") !=
          std::string::npos);
    CHECK(text.find("1 passed, 1 failed, 1 skipped in 5.1s\n") != std::string::npos);
}

TEST_CASE("report: the JSON document follows the documented schema 1", "[report][unit]") {
    const auto results = sample();
    const auto j =
        report::to_json("lab1", results, report::summarize(results, std::chrono::seconds(5)));
    CHECK(j.at("schema") == 1);
    CHECK(j.at("host") == "lab1");
    CHECK(j.at("ok") == false);
    CHECK(j.at("summary").at("passed") == 1);
    CHECK(j.at("summary").at("failed") == 1);
    CHECK(j.at("summary").at("skipped") == 1);
    CHECK(j.at("summary").at("seconds") == 5.0);
    REQUIRE(j.at("checks").size() == 3);
    const auto& c = j.at("checks")[1];
    CHECK(c.at("name") == "prometheus.targets");
    CHECK(c.at("group") == "prometheus");
    CHECK(c.at("status") == "fail");
    CHECK(c.at("seconds") == 5.0);
    CHECK(c.at("attempts") == 5);
    CHECK(c.at("evidence")[0].at("url") == "GET http://h:9090/api/v1/targets?state=active");
    CHECK(c.at("evidence")[0].at("status") == 200);
    CHECK(c.at("evidence")[0].at("note") == "5 of 6 jobs up");
    CHECK(c.at("evidence")[0].at("excerpt") == "{\"status\":\"success\"}");
    CHECK(j.at("checks")[2].at("status") == "skip");
}

TEST_CASE("report: JUnit has classname labctl.<host>.<group>, failure, skipped, system-out and "
          "escapes XML",
          "[report][unit]") {
    const auto results = sample();
    const auto xml = report::to_junit("10.66.77.10", results,
                                      report::summarize(results, std::chrono::seconds(5)));
    CHECK(xml.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites ", 0) == 0);
    CHECK(xml.find("tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"5.000\"") !=
          std::string::npos);
    CHECK(xml.find("<testcase classname=\"labctl.10_66_77_10.stack\" name=\"stack.health\" "
                   "time=\"1.234\">") != std::string::npos);
    CHECK(xml.find("classname=\"labctl.10_66_77_10.prometheus\" name=\"prometheus.targets\"") !=
          std::string::npos);
    CHECK(xml.find("<failure message=\"not up: task-api (http://a:5000/metrics down: connection "
                   "refused &lt;&amp;&gt;&quot;)\" type=\"labctl.verify.prometheus.targets\">") !=
          std::string::npos);
    CHECK(xml.find("<skipped message=\"no SSH settings\"/>") != std::string::npos);
    CHECK(xml.find("<system-out>7 services healthy\nGET http://h:9090/-/ready -&gt; 200: "
                   "prometheus\n") != std::string::npos);
    CHECK(labctl::xml_escape(std::string("a\x01z\tb", 5)) == "a z\tb");
}

TEST_CASE("verify endpoints: defaults follow the stack ports and bracket IPv6 hosts",
          "[verify][unit]") {
    const auto e = verify::default_endpoints("10.0.0.5");
    CHECK(e.at("nginx") == "http://10.0.0.5:8080");
    CHECK(e.at("api") == "http://10.0.0.5:5000");
    CHECK(e.at("grafana") == "http://10.0.0.5:3000");
    CHECK(e.at("prometheus") == "http://10.0.0.5:9090");
    CHECK(e.at("tempo") == "http://10.0.0.5:3200");
    CHECK(e.at("loki") == "http://10.0.0.5:3100");
    CHECK(e.at("collector") == "http://10.0.0.5:13133");
    CHECK(e.size() == verify::endpoint_names().size());
    CHECK(verify::default_endpoints("::1").at("tempo") == "http://[::1]:3200");
}

TEST_CASE("verify deadlines: a per-check deadline wins over the default", "[verify][unit]") {
    verify::Options o;
    o.deadline = std::chrono::seconds(90);
    o.deadlines["trace.e2e"] = std::chrono::seconds(300);
    CHECK(verify::deadline_for(o, "trace.e2e") == std::chrono::seconds(300));
    CHECK(verify::deadline_for(o, "stack.health") == std::chrono::seconds(90));
}

TEST_CASE("verify: an unknown check is a failed result, not an exception", "[verify][unit]") {
    verify::Options o;
    o.checks = {"no.such.check"};
    const auto r = verify::run_checks(o);
    REQUIRE(r.size() == 1);
    CHECK(r[0].status == Status::fail);
    CHECK(r[0].message == "unknown check 'no.such.check'");
}
