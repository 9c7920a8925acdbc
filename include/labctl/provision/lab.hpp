#pragma once
// A lab on several libvirt hosts (hosts: in lab.yaml): plan, provision, status and down run on
// each host's view of the lab (LabSpec::for_host), in parallel, and what they return names the
// host. With one host they are plan, provision, status and down themselves, results tagged.

#include <string>
#include <vector>

#include <labctl/config/lab_spec.hpp>
#include <labctl/core/exit_code.hpp>
#include <labctl/provision/plan.hpp>
#include <labctl/provision/provision.hpp>

namespace labctl::provision {

/// A session per host, in LabSpec::hosts order; a missing or null entry is opened when needed
/// (tests pass theirs: libvirt's test:///<file> state lives as long as its connection).
using HostSessions = std::vector<LibvirtSession*>;

/// A host that could not be read or changed, and why (the other hosts' work still stands).
struct HostFailure {
    std::string host;
    std::string uri;
    ExitCode code = ExitCode::internal;
    std::string message;
    std::string hint;
};

struct HostPlan {
    std::string host;
    Plan plan;
};

/// make_plan for each host (its libvirt read-only). Errors are make_plan's, the message naming
/// the host when the lab has several.
std::vector<HostPlan> plan_lab(const config::LabSpec& spec, const PlanOptions& options = {});
/// The same against the sessions' inventories (host routes are not read).
std::vector<HostPlan> plan_lab(const config::LabSpec& spec, const HostSessions& sessions);

/// Provisions every host at once, each with its own VMs (--parallel VMs at a time per host).
/// All or nothing: when one host fails, the others stop (their waits at the next poll) and what
/// this run made on every host is removed (unless keep_on_failure); the error is the failed
/// host's, named, and its hint says what was rolled back on the others.
ProvisionResult provision_lab(const config::LabSpec& spec, const ProvisionOptions& options = {});
ProvisionResult provision_lab(const config::LabSpec& spec, const HostSessions& sessions,
                              const ProvisionOptions& options = {});

struct LabStatus {
    std::vector<VmStatus> vms;
    std::vector<HostFailure> unreachable; ///< hosts that could not be read
};
LabStatus status_lab(const config::LabSpec& spec, const HostSessions& sessions = {});

struct LabDown {
    std::vector<Change> changes;
    std::vector<HostFailure> failures; ///< hosts where down failed; the others were cleaned
};
/// down on every host; one host failing does not stop the others.
LabDown down_lab(const config::LabSpec& spec, const DownOptions& options = {},
                 const HostSessions& sessions = {});

} // namespace labctl::provision
