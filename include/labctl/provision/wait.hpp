#pragma once
// The wait phase after a VM starts: its IP address (reservation -> lease -> guest agent: with a
// reservation only the reserved address counts, once a lease or the agent shows it), SSH
// with real key authentication against the pinned host key, then `cloud-init status --wait`.
// Each phase has its own deadline and a timeout names the phase (exit 4). What the phase asks of
// the guest goes through GuestProbe, so tests drive it without a VM.

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <labctl/config/lab_spec.hpp>
#include <labctl/remote/session.hpp>

namespace labctl::provision {

struct WaitDeadlines {
    std::chrono::milliseconds ip{std::chrono::minutes(3)};
    std::chrono::milliseconds ssh{std::chrono::minutes(5)};
    std::chrono::milliseconds cloud_init{std::chrono::minutes(15)};
    std::chrono::milliseconds poll{std::chrono::seconds(2)};
    /// A VM restarted for new cpus or memory: its clean shutdown, before it is powered off.
    std::chrono::milliseconds shutdown{std::chrono::minutes(2)};
};

/// What the wait phase asks about one VM's guest.
class GuestProbe {
public:
    virtual ~GuestProbe() = default;
    /// False once the domain has stopped (the wait then fails at once).
    virtual bool running() = 0;
    /// The address reserved for the VM's MAC in the network, if any.
    virtual std::optional<std::string> reserved_ip() = 0;
    /// The address of a current DHCP lease for the VM's MAC, if any.
    virtual std::optional<std::string> lease_ip() = 0;
    /// An IPv4 address the guest agent reports for the VM's NIC, if any.
    virtual std::optional<std::string> agent_ip() = 0;
    /// The last lines of the serial console (printed when the wait fails).
    virtual std::vector<std::string> console_tail() = 0;
};

struct WaitTarget {
    std::string vm;
    remote::ConnectOptions ssh; ///< endpoint.host is filled with the address found
    /// ssh.endpoint is already where the VM answers (mode user: 127.0.0.1 and the forwarded
    /// port): there is no DHCP lease to wait for, so the ip phase is skipped.
    bool address_known = false;
    bool strict = false; ///< cloud-init status 2 (recoverable errors) fails
    std::string cloud_init_command = "cloud-init status --wait --format json";
    /// Where cloud-init keeps status.json and result.json (empty: not read). When they show it
    /// finished without errors, the wait is over without starting cloud-init's Python (about
    /// 5 s under TCG); anything else runs cloud_init_command.
    std::string cloud_init_run_dir = "/run/cloud-init";
    /// Set by the run when it gives up (another VM failed under --parallel): the ip and ssh
    /// phases stop at their next poll, and the cloud-init phase's remote exec at its next poll
    /// (its remote process group ended), with Error(interrupted) instead of waiting out minutes
    /// before the rollback can start.
    const std::atomic<bool>* cancelled = nullptr;
};

/// How `vm` of `spec` is waited for: its SSH endpoint, pinned key and jump host, and whether its
/// address is known from the start (mode user) (pure).
WaitTarget wait_target(const config::LabSpec& spec, const config::VmSpec& vm);

struct WaitResult {
    std::string ip;
    std::string ip_source;  ///< "lease", "agent"
    std::string cloud_init; ///< "done" or "degraded"
};

/// Of the IPv4 leases a MAC has, the reserved address when it is among them, else the first:
/// a lease from before the reservation changed lives on next to the new one until it expires.
std::optional<std::string> pick_lease(const std::vector<std::string>& leases,
                                      const std::optional<std::string>& reserved);

/// Whether cloud-init's own files say it is done, exactly as `cloud-init status` (22.4.2) decides
/// from them: status.json with no stage running, no stage started and unfinished, no errors, and
/// result.json present. False for anything else, including errors, newer "recoverable_errors"
/// (degraded) and unparsable files: the caller then asks cloud-init itself (pure).
bool cloud_init_done_from_files(const std::string& status_json, const std::string& result_json);

/// Runs the three phases in order (without the ip phase when target.address_known). Errors:
/// Error(timeout) naming the phase ("ip", "ssh", "cloud-init"); Error(ssh) when the domain stopped,
/// the host key does not match, login is refused or cloud-init reports an error (or a warning with
/// strict). Checks for Ctrl-C while polling.
WaitResult wait_for_guest(GuestProbe& probe, const WaitTarget& target,
                          const WaitDeadlines& deadlines);

} // namespace labctl::provision
