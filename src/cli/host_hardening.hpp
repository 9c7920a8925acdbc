#pragma once
// The host parts of `labctl harden` (firewall, fail2ban, auditd, sysctl) for one target: the
// probe, the plan with the ports the stack publishes there, and either the dry run's listing or
// the transactional apply judged by the lab's own checks (stack.health, prometheus.targets) when
// the stack runs on the target.

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <labctl/config/lab_spec.hpp>
#include <labctl/remote/session.hpp>

#include "targets.hpp"

namespace labctl::cli {

struct HostHardening {
    nlohmann::json json;                        ///< {"parts": [...], "changed": bool}
    std::vector<std::vector<std::string>> rows; ///< STEP, DETAIL
    std::string dry_run; ///< with dry_run: every file that would be written, and what runs
};

/// stack_target: the stack runs (or will run) on this target, so its ports are opened and its
/// checks judge each part. Throws Error(harden) after reverting a part that failed.
HostHardening harden_host(const config::LabSpec& spec, const Target& target, bool from_flag,
                          bool stack_target, remote::Session& session,
                          const remote::ConnectOptions& reconnect, bool dry_run);

} // namespace labctl::cli
