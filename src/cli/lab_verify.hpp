#pragma once
// verify as the lab file sets it up (its checks, deadlines and stack VMs), for the verbs that run
// it as one of their steps (snapshot save and restore).

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <labctl/config/lab_spec.hpp>
#include <labctl/report/report.hpp>

#include "targets.hpp"

namespace labctl::cli {

/// The reports of one verify run, one per stack VM.
struct LabVerify {
    std::vector<report::HostReport> runs;
    bool ok() const;
    /// `labctl verify --output json`'s document.
    nlohmann::json json() const;
    /// `labctl verify`'s table.
    std::string text() const;
};

/// Runs lab.yaml's checks on every VM that runs the stack (deploy.host when set). Ctrl-C throws.
LabVerify verify_lab(const config::LabSpec& spec);

/// Runs those of `checks` that lab.yaml's verify.checks lists on `target` (from_flag: a --host),
/// each within `deadline`: "" when they pass, else "name: message" of each failure, joined with
/// "; ". For steps judged by the lab's own checks (host hardening). Ctrl-C throws.
std::string failing_checks(const config::LabSpec& spec, const Target& target, bool from_flag,
                           const std::vector<std::string>& checks,
                           std::chrono::milliseconds deadline);

} // namespace labctl::cli
