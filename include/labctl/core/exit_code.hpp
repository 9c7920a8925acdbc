#pragma once
// The one table of labctl's exit codes (DESIGN §2). The man page and `--help` print it from here.

#include <array>
#include <string_view>

namespace labctl {

enum class ExitCode : int {
    ok = 0,
    internal = 1,
    usage = 2,
    preflight = 3,
    timeout = 4,
    ssh = 5,
    harden = 6,
    deploy = 7,
    verify = 8,
    provision = 9,
    changes = 10,
    interrupted = 130,
};

struct ExitCodeInfo {
    ExitCode code;
    std::string_view name;
    std::string_view meaning;
};

inline constexpr std::array k_exit_codes{
    ExitCodeInfo{ExitCode::ok, "ok", "success"},
    ExitCodeInfo{ExitCode::internal, "internal", "internal error (a bug: please report it)"},
    ExitCodeInfo{ExitCode::usage, "usage", "usage or configuration error"},
    ExitCodeInfo{ExitCode::preflight, "preflight",
                 "host preflight failed (libvirt, KVM, pool, network)"},
    ExitCodeInfo{ExitCode::timeout, "timeout",
                 "timed out (the message names the phase: ip, ssh, cloud-init, compose)"},
    ExitCodeInfo{ExitCode::ssh, "ssh",
                 "SSH or guest bootstrap failed (host key mismatch, authentication refused, "
                 "cloud-init failed)"},
    ExitCodeInfo{ExitCode::harden, "harden", "hardening failed and was reverted"},
    ExitCodeInfo{ExitCode::deploy, "deploy", "deploy failed"},
    ExitCodeInfo{ExitCode::verify, "verify", "verification ran and found failures"},
    ExitCodeInfo{ExitCode::provision, "provision",
                 "provisioning failed after preflight (libvirt refused or lost an operation; "
                 "what labctl made was rolled back)"},
    ExitCodeInfo{ExitCode::changes, "changes", "plan --detailed-exitcode found changes"},
    ExitCodeInfo{ExitCode::interrupted, "interrupted", "interrupted (after cleanup)"},
};

constexpr int to_int(ExitCode c) noexcept {
    return static_cast<int>(c);
}

} // namespace labctl
