#pragma once
// Reports of `labctl verify`: a human table for stdout, a JSON document with a stable schema
// (documented in man/labctl.1) and JUnit XML that Jenkins' junit step understands.

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <labctl/verify/check.hpp>

namespace labctl::report {

struct Summary {
    int passed = 0, failed = 0, skipped = 0;
    std::chrono::milliseconds wall{0}; ///< wall time of the whole run
    bool ok() const { return failed == 0; }
};

Summary summarize(const std::vector<verify::CheckResult>& results, std::chrono::milliseconds wall);

/// CHECK STATUS TIME EVIDENCE table and a summary line ("6 passed, 1 failed, 1 skipped in 12.3s").
std::string human(const std::vector<verify::CheckResult>& results, const Summary& summary);

/// {"schema":1,"host":…,"ok":…,"summary":{…},"checks":[{"name","group","status","seconds",
/// "message","attempts","evidence":[{"url","status","note","excerpt"}]}]}
nlohmann::json to_json(const std::string& host, const std::vector<verify::CheckResult>& results,
                       const Summary& summary);

/// <testsuites><testsuite name="labctl.verify.<host>"><testcase classname="labctl.<host>.<group>"
/// name="<check>" time="…"> with <failure message type>, <skipped message/> and <system-out>.
std::string to_junit(const std::string& host, const std::vector<verify::CheckResult>& results,
                     const Summary& summary);

/// One host's verify run, for the reports of a lab whose stack runs on several VMs.
struct HostReport {
    std::string host;
    std::vector<verify::CheckResult> results;
    Summary summary;
};

/// The same with a <testsuite> per host (the run's time is the hosts' times added: they run one
/// after the other).
std::string to_junit(const std::vector<HostReport>& hosts);

} // namespace labctl::report
