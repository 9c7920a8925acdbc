#pragma once
// Applying a hardening plan without ever locking labctl out: the first session stays open, the
// new configuration is syntax-checked, an automatic revert is armed on the target before sshd
// reloads, and only a successful *new* key login plus the effective-value checks disarm it. Any
// failure reverts at once and throws Error(harden) naming the step.

#include <chrono>
#include <string>
#include <vector>

#include <labctl/harden/plan.hpp>
#include <labctl/remote/session.hpp>

namespace labctl::harden {

struct ApplyOptions {
    std::chrono::seconds revert_after{120};
    /// Tried against the hardened server; it must be refused. Empty = a random string.
    std::string probe_password;
    /// Test-only fault injection: "after-reload" abandons the run right after reloading sshd
    /// (as if the session died), leaving the armed revert to restore the old configuration.
    std::string fault;
    /// policy_fingerprint of the plan: when the target's record matches it (record_mismatch),
    /// nothing is re-checked; after a completed run the record is written. Empty: no record.
    std::string policy;
    /// With a policy: when the record does not match, return (drift set) without applying, e.g.
    /// for facts kept from an earlier run, which the full probe must confirm first.
    bool prove_only = false;
};

struct StepResult {
    std::string step;
    std::string detail;
};

struct HardenReport {
    bool changed = false;
    bool proven_by_record = false; ///< the record matched: nothing was changed or re-checked
    std::string drift;             ///< why the record did not match ("" without a policy)
    std::vector<StepResult> steps;
};

HardenReport apply(const HardenPlan& plan, const TargetFacts& facts, remote::Session& session,
                   const remote::ConnectOptions& reconnect, const ApplyOptions& options);

} // namespace labctl::harden
