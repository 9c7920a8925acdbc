#pragma once
// The host parts of `labctl harden` (firewall, fail2ban, auditd, sysctl) for one target: the
// probe, the plan with the ports the stack publishes there, and either the dry run's listing or
// the transactional apply judged by the lab's own checks (stack.health, prometheus.targets) when
// the stack runs on the target.

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <labctl/config/lab_spec.hpp>
#include <labctl/harden/host_plan.hpp>
#include <labctl/remote/session.hpp>
#include <labctl/verify/verify.hpp>

#include "targets.hpp"

namespace labctl::cli {

/// The target's host facts and the policy lab.yaml asks of it (the stack's ports included).
struct HostSetup {
    harden::HostFacts facts;
    harden::HostPolicy policy;
    bool running = false; ///< the stack's containers run there
};

/// Probes `session`'s host and builds its policy; stack_target: the stack runs (or will run)
/// there, so its ports are opened (from the running stack's `compose config`, else the stack's
/// service ports).
HostSetup host_setup(const config::LabSpec& spec, remote::Session& session, bool stack_target);

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

/// After a deploy: when labctl's firewall is on the target, opens what the stack now publishes
/// (the firewall part alone, judged like harden's). "" when nothing changed, else a line saying
/// what. Throws Error(harden) after reverting when the stack's checks fail with it.
std::string refresh_firewall(const config::LabSpec& spec, const Target& target,
                             remote::Session& session, const remote::ConnectOptions& reconnect);

/// The Lynis tests verify --lynis skips (slow, no hardening score).
const std::vector<std::string>& lynis_skipped_tests();

/// verify's host.hardened on one target: every enabled part as lab.yaml wants it (the plan would
/// change nothing) and live (each part's own check passes); with `lynis`, Lynis's hardening
/// index too. Bounded by `budget`.
verify::HostFinding check_host_hardened(const config::LabSpec& spec,
                                        const remote::ConnectOptions& connect, bool lynis,
                                        std::chrono::milliseconds budget);

} // namespace labctl::cli
