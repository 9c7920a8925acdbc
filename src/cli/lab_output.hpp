#pragma once
// Private to src/cli: how the verbs that work on the lab's libvirt hosts (plan, provision, status,
// down) print them: a HOST column only when the lab has several, the hosts in JSON always, and a
// host that failed reported after what the others did.

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <labctl/config/lab_spec.hpp>
#include <labctl/core/table.hpp>
#include <labctl/provision/lab.hpp>

namespace labctl::cli {

/// [{"name": ..., "uri": ...}] of the lab's libvirt hosts.
nlohmann::json hosts_json(const config::LabSpec& spec);

/// ACTION KIND NAME DETAIL, with HOST first when `several`.
Table changes_table(const std::vector<provision::Change>& changes, bool several);
nlohmann::json changes_json(const std::vector<provision::Change>& changes);

/// Throws the first failure as the run's error (Interrupted for Ctrl-C), naming its host and
/// how many hosts failed; nothing when `failures` is empty. `doing` is "read" or "cleaned".
void throw_host_failures(const config::LabSpec& spec,
                         const std::vector<provision::HostFailure>& failures,
                         const std::string& doing);

} // namespace labctl::cli
