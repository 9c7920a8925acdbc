#pragma once
// Planning hardening is pure: from the wanted policy and the probed facts it renders the drop-in
// and decides what must change, so plans are unit-tested without a network.

#include <chrono>
#include <string>
#include <vector>

#include <labctl/harden/facts.hpp>

namespace labctl::harden {

struct HardenInput {
    std::string user;                     ///< the login labctl uses; always allowed
    std::vector<std::string> allow_users; ///< must contain user (refused otherwise)
    std::string profile = "modern";
    std::vector<std::string> client_kex, client_ciphers, client_macs, client_hostkeys;
    std::vector<std::string> pinned_hostkey_types; ///< e.g. "ssh-ed25519" from known_hosts
    std::vector<std::string> lock_accounts;        ///< passwords to lock: user and root
};

struct HardenPlan {
    std::string dropin_path;
    std::string dropin;                                    ///< the rendered file
    std::vector<std::string> kex, ciphers, macs, hostkeys; ///< the final lists
    std::vector<std::string> allow_users; ///< AllowUsers of the drop-in, all sshd may allow
    bool dropin_changes = false;
    std::vector<std::string> accounts_to_lock; ///< those not already locked
    bool changes() const { return dropin_changes || !accounts_to_lock.empty(); }
};

/// Throws Error(usage) when the policy would lock labctl out (user not allowed, no common
/// algorithm with labctl's client, pinned host key type not allowed) and Error(harden) when the
/// target lacks a drop-in directory.
HardenPlan plan(const HardenInput& input, const TargetFacts& facts);

/// `wanted` ∩ `available`, in `wanted`'s order.
std::vector<std::string> intersect(const std::vector<std::string>& wanted,
                                   const std::vector<std::string>& available);

} // namespace labctl::harden
