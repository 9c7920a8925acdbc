#pragma once
// The hardening policy: the sshd settings labctl enforces and, per profile, the algorithms it
// allows before they are intersected with what the target and labctl's own client support.

#include <string>
#include <utility>
#include <vector>

namespace labctl::harden {

struct AlgorithmPolicy {
    std::vector<std::string> kex, ciphers, macs, hostkeys; ///< in preference order
};

/// "modern" (default) or "compat"; throws Error(usage) for anything else.
AlgorithmPolicy algorithm_policy(const std::string& profile);

/// The fixed settings (lowercase keyword as `sshd -T` prints it, expected value) every hardened
/// host must show, AllowUsers and the algorithm lists excluded.
const std::vector<std::pair<std::string, std::string>>& required_settings();

} // namespace labctl::harden
