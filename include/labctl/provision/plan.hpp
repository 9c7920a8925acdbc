#pragma once
// plan: the lab's desired state (desired.hpp) compared with what exists in libvirt
// (inventory.hpp): every object is to be created, kept, updated in place, replaced or deleted.
// Objects labctl did not make are never planned for change; a name clash with one is refused.
// Items that restart a running VM or lose data are flagged: provision asks before them.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <labctl/config/lab_spec.hpp>
#include <labctl/provision/desired.hpp>
#include <labctl/provision/host.hpp>
#include <labctl/provision/inventory.hpp>

namespace labctl::provision {

enum class PlanAction { create, keep, update, replace, remove };

/// "create", "keep", "update", "replace", "delete"
std::string_view action_name(PlanAction action);

struct PlanItem {
    PlanAction action;
    ResourceKind kind;
    std::string name;
    std::string detail;
    std::string vm;          ///< the VM it belongs to; "" for shared objects
    bool restarts = false;   ///< stops a running VM (redefined or replaced)
    bool loses_data = false; ///< a disk with the VM's data is deleted or recreated
};

struct Plan {
    std::string project;
    std::string uri;
    bool offline = false; ///< planned without contacting libvirt (against an empty host)
    std::vector<PlanItem> items;
    std::vector<std::string> warnings;

    std::size_t count(PlanAction action) const;
    /// Anything to create, update, replace or delete.
    bool has_changes() const;
    /// The items that restart a running VM or lose data: what provision asks about first.
    std::vector<const PlanItem*> disruptive() const;
    /// "Plan: 9 to create, 0 to keep, 0 to update, 0 to replace, 0 to delete."
    std::string summary() const;
};

struct PlanOptions {
    bool offline = false;
    std::string route_table = "/proc/net/route";
};

/// Reads libvirt at spec.libvirt.uri (read-only; nothing when offline) and this host's routes,
/// then plans. Throws Error(preflight) when libvirt cannot be reached, when a name is taken by an
/// object labctl did not create, when the network range collides, or when the pool is missing
/// and cannot be created.
Plan make_plan(const config::LabSpec& spec, const PlanOptions& options = {});

/// The pure part of make_plan: compares the spec with `existing` and `routes`.
Plan plan_against(const config::LabSpec& spec, const Inventory& existing,
                  const std::vector<HostRoute>& routes, bool offline = false);

} // namespace labctl::provision
