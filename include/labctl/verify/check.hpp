#pragma once
// What a verification check produces: a CheckResult is data (pass, fail or skip with evidence),
// never an exception, so one failing backend cannot stop the other checks or the report.

#include <chrono>
#include <string>
#include <vector>

namespace labctl::verify {

enum class Status { pass, fail, skip };

/// "pass" | "fail" | "skip"
const char* to_string(Status status);

/// One observation a check made: the URL (or command) it asked, the answer's status and an
/// excerpt of the body, plus a note saying what it concluded from it.
struct Evidence {
    std::string url;
    int status = 0; ///< HTTP status; 0 when no answer arrived (refused, timed out)
    std::string excerpt;
    std::string note;

    /// One line: "GET url -> 200 note" (excerpt not included).
    std::string summary() const;
};

struct CheckResult {
    std::string name; ///< e.g. "prometheus.targets"
    Status status = Status::skip;
    std::chrono::milliseconds duration{0};
    std::vector<Evidence> evidence;
    std::string message; ///< why it failed or was skipped; what it proved when it passed
    int attempts = 0;    ///< polls made

    /// "prometheus" for "prometheus.targets": the JUnit classname group.
    std::string group() const;
};

} // namespace labctl::verify
