// `labctl verify --junit FILE` writes JUnit XML that validates (xmllint --schema) against the XSD
// written for this test (tests/fixtures/verify/junit.xsd), with passes, a failure and a skip.

#include <catch2/catch.hpp>

#include "fake_stack.hpp"
#include "skip.hpp"
#include "verify_test_util.hpp"

using namespace labctl::test;
using namespace labctl::test::verify;

TEST_CASE("verify junit: a report with pass, failure and skipped validates against the JUnit XSD "
          "with xmllint",
          "[verify][junit][contract]") {
    require_program("xmllint");
    Quirks q;
    q.grafana_health_error_uid = "loki"; // a backend health check that fails
    q.tempo_polls_before_found = 0;
    FakeStack stack(q);
    TempDir dir;
    const auto lab = write_lab(dir, stack.endpoints(), {{"grafana.provisioned", "2s"}});
    const auto junit = dir.path() / "reports" / "verify.xml";
    // No SSH key in this lab: ssh.hardened is skipped.
    const auto run = run_verify(lab, {"--only", "stack.health", "--only", "trace.e2e", "--only",
                                      "grafana.provisioned", "--only", "ssh.hardened", "--junit",
                                      junit.string()});
    INFO(run.process.out << run.process.err);
    CHECK(run.process.exit_code == 8);
    REQUIRE(std::filesystem::exists(junit));
    const auto xml = read_file(junit);
    INFO(xml);

    const auto lint = labctl::run_process(
        {"xmllint", "--noout", "--schema", fixture("verify/junit.xsd").string(), junit.string()});
    INFO(lint.out << lint.err);
    CHECK(lint.exit_code == 0);

    CHECK(xml.find("<testsuite name=\"labctl.verify.127_0_0_1\" tests=\"4\" failures=\"1\" "
                   "errors=\"0\" skipped=\"1\"") != std::string::npos);
    CHECK(
        xml.find("<testcase classname=\"labctl.127_0_0_1.grafana\" name=\"grafana.provisioned\"") !=
        std::string::npos);
    CHECK(xml.find("<failure message=\"deadline 2.0s reached") != std::string::npos);
    CHECK(xml.find("type=\"labctl.verify.grafana.provisioned\"") != std::string::npos);
    CHECK(xml.find("<skipped message=\"no SSH settings") != std::string::npos);
    // Evidence (URL, status, excerpt) goes to system-out.
    CHECK(xml.find("/api/datasources/uid/loki/health -&gt; 400") != std::string::npos);
    CHECK(xml.find("&quot;status&quot;:&quot;ERROR&quot;") != std::string::npos);
}

TEST_CASE("verify junit: the XSD rejects a report that breaks labctl's classname promise",
          "[verify][junit]") {
    require_program("xmllint");
    TempDir dir;
    const auto document = [](const std::string& classname) {
        return "<?xml version=\"1.0\"?>\n<testsuites tests=\"1\" failures=\"0\" errors=\"0\" "
               "skipped=\"0\" time=\"1\"><testsuite name=\"labctl.verify.h\" tests=\"1\" "
               "failures=\"0\" errors=\"0\" skipped=\"0\" time=\"1\" "
               "timestamp=\"2026-11-27T07:00:00\" hostname=\"h\"><testcase classname=\"" +
               classname + "\" name=\"stack.health\" time=\"1\"/></testsuite></testsuites>\n";
    };
    const auto xsd = fixture("verify/junit.xsd").string();
    // The same document with the promised classname validates: the schema itself compiles.
    const auto good = dir.write("good.xml", document("labctl.h.stack"));
    const auto ok = labctl::run_process({"xmllint", "--noout", "--schema", xsd, good.string()});
    INFO(ok.out << ok.err);
    CHECK(ok.exit_code == 0);
    const auto bad = dir.write("bad.xml", document("verify"));
    const auto lint = labctl::run_process({"xmllint", "--noout", "--schema", xsd, bad.string()});
    INFO(lint.out << lint.err);
    CHECK(lint.exit_code == 3); // xmllint: validation error (1 would be a parse error)
    CHECK(lint.err.find("classname") != std::string::npos);
}
