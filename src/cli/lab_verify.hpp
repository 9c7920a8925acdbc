#pragma once
// verify as the lab file sets it up (its checks, deadlines and stack VMs), for the verbs that run
// it as one of their steps (snapshot save and restore).

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <labctl/config/lab_spec.hpp>
#include <labctl/report/report.hpp>

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

} // namespace labctl::cli
