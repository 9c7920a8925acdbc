#pragma once
// Shared by the verify integration tests: a lab.yaml pointing verify at given endpoints, and
// running `labctl verify` with JSON output.

#include <fmt/format.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support.hpp"

namespace labctl::test::verify {

/// The checks that need only HTTP services (not SSH, not the resilience restart).
inline const std::vector<std::string> k_http_checks{"stack.health",    "prometheus.targets",
                                                    "prometheus.sli",  "trace.e2e",
                                                    "logs.correlated", "grafana.provisioned"};

/// Writes lab.yaml into `dir` with verify.endpoints and optional per-check deadlines.
inline std::filesystem::path write_lab(const TempDir& dir,
                                       const std::map<std::string, std::string>& endpoints,
                                       const std::map<std::string, std::string>& deadlines = {},
                                       const std::string& deadline = "20s") {
    std::string yaml = "version: 1\nproject: verifytest\nvms:\n  - name: node1\n"
                       "verify:\n  deadline: " +
                       deadline + "\n  endpoints:\n";
    for (const auto& [k, v] : endpoints)
        yaml += fmt::format("    {}: \"{}\"\n", k, v);
    if (!deadlines.empty()) {
        yaml += "  deadlines:\n";
        for (const auto& [k, v] : deadlines)
            yaml += fmt::format("    {}: {}\n", k, v);
    }
    return dir.write("lab.yaml", yaml);
}

struct VerifyRun {
    ProcessResult process;
    nlohmann::json report; ///< parsed stdout (null when not JSON)

    const nlohmann::json& check(const std::string& name) const {
        for (const auto& c : report.at("checks"))
            if (c.at("name") == name)
                return c;
        throw std::runtime_error("no check " + name + " in the report");
    }
    std::string status(const std::string& name) const {
        return check(name).at("status").get<std::string>();
    }
};

inline VerifyRun run_verify(const std::filesystem::path& lab, std::vector<std::string> args) {
    std::vector<std::string> argv{"-f",     lab.string(), "--output", "json",
                                  "verify", "--host",     "127.0.0.1"};
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessOptions o;
    o.timeout = std::chrono::seconds(90);
    VerifyRun r{run_labctl(argv, o), nullptr};
    r.report = nlohmann::json::parse(r.process.out, nullptr, false);
    if (r.report.is_discarded())
        r.report = nullptr;
    return r;
}

inline std::vector<std::string> only(const std::vector<std::string>& checks) {
    std::vector<std::string> out;
    for (const auto& c : checks) {
        out.push_back("--only");
        out.push_back(c);
    }
    return out;
}

} // namespace labctl::test::verify
