#pragma once
// The armed revert both kinds of hardening use (sshd's drop-in, the host parts): a root shell
// script on the target that restores the old state after a delay unless labctl disarms it, run
// by a transient systemd timer or, without systemd, by a detached session leader that nothing
// ending with labctl's SSH session can kill. Commands only (pure); the callers run them.

#include <chrono>
#include <string>

namespace labctl::harden::detail {

struct RevertTimer {
    std::string unit;   ///< the transient systemd unit's name (systemd-run --unit)
    std::string script; ///< the script's path on the target
    std::string pid;    ///< where the detached sleeper writes its pid (no systemd)
    std::chrono::seconds after{120};
    bool systemd = false;

    /// The script: `body` after the delay (none when started with "now"), then it removes itself.
    std::string script_text(const std::string& body) const;
    /// Starts the countdown (the script must be uploaded); fails unless it is armed.
    std::string arm_command() const;
    /// Stops the countdown (if armed) and removes the script: the new state is kept.
    std::string disarm_command() const;
};

} // namespace labctl::harden::detail
