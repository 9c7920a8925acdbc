#pragma once
// Applying the host parts (host_plan.hpp) as transactions, one part at a time: the old files and
// the live state are saved on the target, a revert is armed there, the part is made live and
// proven by its own check, a fresh SSH login and the lab's judge (stack.health and
// prometheus.targets when the stack runs). Only then is the revert disarmed; any failure, and
// Ctrl-C, restores the old state at once over the first session (which the firewall's
// established rule keeps open) and throws Error(harden) naming what failed.

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <labctl/harden/apply.hpp>
#include <labctl/harden/host_plan.hpp>
#include <labctl/remote/session.hpp>

namespace labctl::harden {

struct HostApplyOptions {
    std::chrono::seconds revert_after{120};
    /// Called once a part is live and a fresh login worked: "" when the lab still works, else
    /// what failed ("stack.health: nginx answers 502"). Unset: the login alone judges.
    std::function<std::string(const std::string& part)> judge;
    /// Test-only fault injection: "abandon:<part>" leaves that part live with its revert armed
    /// and throws, as if labctl died there, so the target's own revert is what is tested.
    std::string fault;
};

/// Applies the parts of `plan` that change; those that do not are reported as up to date.
/// Missing packages: Error(harden) naming them (nothing changed). Throws Error(harden) for a
/// failed part after reverting it (parts before it stay applied), Interrupted for Ctrl-C (after
/// reverting).
HardenReport apply_host(const HostPlan& plan, remote::Session& session,
                        const remote::ConnectOptions& reconnect, bool systemd,
                        const HostApplyOptions& options);

/// Probes the target's host facts over `session` (root through sudo). Throws Error(harden).
HostFacts probe_host_facts(remote::Session& session);

} // namespace labctl::harden
