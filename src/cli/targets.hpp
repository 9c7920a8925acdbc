#pragma once
// Which hosts a stage works on: the lab's VMs (address from lab.yaml) or one existing host given
// with --host, and the SSH options to reach them with the lab's pinned known_hosts.

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <labctl/config/lab_spec.hpp>
#include <labctl/config/loader.hpp>
#include <labctl/remote/session.hpp>

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
    /// Reached through a jump host: a VM when its lab host has one (LabSpec::jump_for); a --host
    /// only when ssh.jump names the jump host explicitly (auto follows the URI, which is about
    /// VMs).
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

/// Writes <state_dir>/ssh_config for the system ssh/rsync: pinned known_hosts, strict checking,
/// only the lab's key. Returns its path.
std::string write_ssh_config(const config::LabSpec& spec, const std::vector<Target>& targets);

} // namespace labctl::cli
