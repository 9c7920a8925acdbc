#pragma once
// Which hosts a stage works on: the lab's VMs (address from lab.yaml) or one existing host given
// with --host, and the SSH options to reach them with the lab's pinned known_hosts.

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <labctl/config/lab_spec.hpp>
#include <labctl/config/loader.hpp>
#include <labctl/remote/forward.hpp>
#include <labctl/remote/session.hpp>
#include <labctl/verify/check.hpp>

namespace CLI {
class App;
}

namespace labctl::cli {

/// The options every stage that reaches hosts over SSH shares: --host and --wait.
struct HostOptions {
    std::string host;
    std::string wait = "60s";

    /// Registers --host (with `host_help`) and --wait on `sub`.
    void add_to(CLI::App& sub, const std::string& host_help);
    /// --wait as a duration; throws a usage error when it is not one.
    std::chrono::milliseconds wait_duration() const;
    /// --host as a config override (empty when not given).
    config::Overrides overrides() const;
};

struct Target {
    std::string name; ///< VM name, or the host as given
    remote::Endpoint endpoint;
    /// Reached through a jump host: a VM when its lab host has one (LabSpec::jump_for), also
    /// when a --host names the VM's own SSH address; another --host only when ssh.jump names
    /// the jump host explicitly (auto follows the URI, which is about VMs).
    bool via_jump = false;
    /// The lab host the VM runs on (hosts: in lab.yaml); "" for a --host.
    std::string lab_host;

    /// The Host alias in the lab's ssh_config: the name with anything but [A-Za-z0-9._-]
    /// replaced by '-'.
    std::string alias() const;
};

/// --host wins; otherwise every VM of the spec (or only `vm_filter` when set), each at its SSH
/// address: its own IP and ssh.port (mode nat), or 127.0.0.1 and its forwarded port (mode user).
std::vector<Target> resolve_targets(const config::LabSpec& spec, const std::string& host_flag,
                                    const std::string& vm_filter = {});

/// Where the stack runs: `host` (--host or deploy.host) when set, else every VM with the role the
/// stack names (deploy.role, or deploy.target_vm) at its SSH address. deploy and verify share it.
std::vector<Target> stack_targets(const config::LabSpec& spec, const std::string& host);

/// The stack's services and the guest ports it publishes them on (stacks/lab/README.md), in the
/// names verify uses for its endpoints.
inline const std::vector<std::pair<std::string, int>> k_service_ports{
    {"nginx", 8080}, {"api", 5000},  {"grafana", 3000},    {"prometheus", 9090},
    {"tempo", 3200}, {"loki", 3100}, {"collector", 13133},
};

/// mode user: verify's endpoint URLs for the VM, http://127.0.0.1:<host port of each service's
/// guest port>; a service whose port is not forwarded gets http://127.0.0.1:0 (never answers),
/// with a warning when it is one of `needed` (what the selected checks talk to). Empty in mode
/// nat, where the defaults (the VM's address and the published ports) are right.
std::map<std::string, std::string> vm_endpoints(const config::LabSpec& spec,
                                                const std::string& vm_name,
                                                const std::vector<std::string>& needed = {});

/// The jump host `target` is reached through, or nullopt (reached directly).
std::optional<config::JumpSpec> target_jump(const config::LabSpec& spec, const Target& target);

remote::ConnectOptions connect_options(const config::LabSpec& spec, const Target& target);

/// The Host alias of the jump host of `lab_host`'s VMs in the lab's ssh_config: "labctl-jump",
/// or "labctl-jump-<host>" when the lab has several hosts.
std::string jump_alias(const config::LabSpec& spec, const std::string& lab_host);

/// Writes <state_dir>/ssh_config for the system ssh/rsync: pinned known_hosts, strict checking,
/// only the lab's key. Returns its path.
std::string write_ssh_config(const config::LabSpec& spec, const std::vector<Target>& targets);

/// verify's way to the services of a target behind the jump host: a local port forward through
/// the jump host (remote::Forward) per service, open while this object lives.
class JumpForwards {
public:
    /// service -> http://127.0.0.1:<local port>, for every forwarded service.
    const std::map<std::string, std::string>& endpoints() const { return m_endpoints; }
    /// Names, in the note of every evidence whose URL went through a forward, the address it
    /// stands for: "(127.0.0.1:41235 is 10.78.0.10:9090 through the jump host u@h:22)".
    void annotate(std::vector<verify::CheckResult>& results) const;
    /// Warns about each forward that stopped serving during the run (the jump session was lost).
    void warn_failures() const;

private:
    friend JumpForwards open_forwards(const config::LabSpec&, const Target&,
                                      const std::vector<std::string>&);
    struct Entry {
        std::string service;
        std::string local; ///< http://127.0.0.1:<port>
        std::unique_ptr<remote::Forward> forward;
    };
    std::vector<Entry> m_entries;
    std::map<std::string, std::string> m_endpoints;
};

/// When `target` is reached through the jump host: one forward for every service of `needed`
/// that lab.yaml's verify.endpoints does not set, to where the jump host reaches it (a VM's
/// service address, or --host's address and the service's guest port). Empty otherwise.
/// Throws what connecting to the jump host throws (HostKeyError, ConnectError, Error).
JumpForwards open_forwards(const config::LabSpec& spec, const Target& target,
                           const std::vector<std::string>& needed);

/// For `labctl up`'s URLs of VM `vm_name` when it is behind the jump host: one line saying the
/// URLs are reachable only from there, with the ssh command (through the lab's ssh_config, which
/// this writes) that forwards `guest_ports` to the same ports on 127.0.0.1 here. "" when the VM
/// is reached directly.
std::string jump_url_hint(const config::LabSpec& spec, const std::string& vm_name,
                          const std::vector<int>& guest_ports);

} // namespace labctl::cli
