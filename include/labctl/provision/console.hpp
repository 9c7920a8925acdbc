#pragma once
// `labctl console VM`: this terminal on a lab VM's serial console through a libvirt stream
// (virDomainOpenConsole), as `virsh console` does, for a guest whose network or SSH is broken.

#include <string>

#include <labctl/config/lab_spec.hpp>

namespace labctl::provision {

struct ConsoleOptions {
    bool force = false; ///< take the console over from another client that holds it
    int in_fd = 0;      ///< put in raw mode while attached when it is a terminal
    int out_fd = 1;
    char escape = 0x1d; ///< Ctrl-]: detach
};

/// How an attached console ended.
enum class ConsoleEnd {
    detached,    ///< the escape byte was typed
    input_ended, ///< in_fd reached its end (a pipe), and 2 s of the guest's answer were shown
    closed,      ///< the guest side closed (the VM stopped)
};

/// Attaches `vm` of the lab (on its host) until the escape byte, the end of input, the stream's
/// end, or Ctrl-C from outside (Interrupted). The terminal's mode is restored on every way out.
/// Error(usage) when the VM is not in the lab or not provisioned, Error(provision) when libvirt
/// refuses the console (another client holds it: the hint names --force).
ConsoleEnd attach_console(const config::LabSpec& spec, const std::string& vm,
                          const ConsoleOptions& options);

} // namespace labctl::provision
