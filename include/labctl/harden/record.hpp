#pragma once
// What the last completed hardening applied and proved, kept on the target beside the drop-in
// (TargetFacts::record_path, root 0600). A later run whose policy, drop-in, locked passwords and
// sshd's effective settings (`sshd -T`) all match it has nothing to change or re-prove: it skips
// the new-session, auth-method and password-login checks. Any difference runs them all.

#include <optional>
#include <string>

#include <labctl/harden/facts.hpp>
#include <labctl/harden/plan.hpp>

namespace labctl::harden {

struct HardenRecord {
    static constexpr int k_format = 1;
    std::string labctl_version;
    std::string policy;    ///< policy_fingerprint of the plan that was applied
    std::string effective; ///< SHA-256 of sshd's effective settings after it
    std::string applied_at;
};

/// SHA-256 (hex) of what a plan enforces: the drop-in's text, the login user and the accounts
/// whose passwords are locked (pure).
std::string policy_fingerprint(const HardenPlan& plan, const std::string& user,
                               const std::vector<std::string>& locked_accounts);

/// SHA-256 (hex) of `sshd -T` output, as the probe script computes it (pure).
std::string effective_fingerprint(const std::string& sshd_t_output);

std::string to_text(const HardenRecord& record);
/// nullopt when `text` is not a record of this format.
std::optional<HardenRecord> record_from_text(const std::string& text);

/// Why the probed target does not match its record for `plan` (empty: it matches) (pure).
std::string record_mismatch(const TargetFacts& facts, const HardenPlan& plan,
                            const std::string& policy);

} // namespace labctl::harden
