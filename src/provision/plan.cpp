#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include <labctl/config/loader.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/provision/naming.hpp>
#include <labctl/provision/network.hpp>
#include <labctl/provision/plan.hpp>
#include <labctl/provision/vm_change.hpp>

#include "format.hpp"

namespace labctl::provision {

std::string_view action_name(PlanAction action) {
    switch (action) {
    case PlanAction::create:
        return "create";
    case PlanAction::keep:
        return "keep";
    case PlanAction::update:
        return "update";
    case PlanAction::replace:
        return "replace";
    case PlanAction::remove:
        return "delete";
    }
    return "?";
}

std::size_t Plan::count(PlanAction action) const {
    return static_cast<std::size_t>(std::count_if(
        items.begin(), items.end(), [action](const PlanItem& i) { return i.action == action; }));
}

bool Plan::has_changes() const {
    return count(PlanAction::keep) < items.size();
}

std::vector<const PlanItem*> Plan::disruptive() const {
    std::vector<const PlanItem*> out;
    for (const auto& i : items)
        if (i.restarts || i.loses_data)
            out.push_back(&i);
    return out;
}

std::string Plan::summary() const {
    return fmt::format("Plan: {} to create, {} to keep, {} to update, {} to replace, {} to delete.",
                       count(PlanAction::create), count(PlanAction::keep),
                       count(PlanAction::update), count(PlanAction::replace),
                       count(PlanAction::remove));
}

namespace {

Error preflight(std::string message, std::string hint) {
    return Error(ExitCode::preflight, std::move(message), std::move(hint));
}

std::string short_hash(const std::string& h) {
    return h.size() > 12 ? h.substr(0, 12) : h;
}

class Planner {
public:
    Planner(const config::LabSpec& spec, const Inventory& existing,
            const std::vector<HostRoute>& routes, bool offline)
        : m_spec(spec), m_existing(existing), m_routes(routes) {
        m_plan.project = spec.project;
        m_plan.uri = spec.libvirt.uri;
        m_plan.offline = offline;
    }

    Plan run() {
        check_unique_macs();
        for (const auto& vm : m_spec.vms)
            m_spec_vms.insert(vm.name);
        for (const auto& r : desired_resources(m_spec)) {
            switch (r.kind) {
            case ResourceKind::network:
                network(r);
                break;
            case ResourceKind::pool:
                pool(r);
                break;
            case ResourceKind::base_volume:
            case ResourceKind::boot_volume:
            case ResourceKind::overlay_volume:
            case ResourceKind::seed_volume:
                volume(r);
                break;
            case ResourceKind::dhcp_host:
                dhcp_host(r);
                break;
            case ResourceKind::domain:
                domain(r);
                break;
            }
        }
        if (base_volume_name(m_spec.image).empty())
            m_plan.warnings.push_back("lab.yaml names no image (image.path or image.url): "
                                      "provisioning needs one");
        stale();
        return std::move(m_plan);
    }

private:
    PlanItem& add(PlanAction action, const DesiredResource& r, std::string detail) {
        return m_plan.items.emplace_back(
            PlanItem{action, r.kind, r.name, std::move(detail), r.vm, false, false});
    }

    /// How the VM's existing domain differs from lab.yaml; nullptr when it has none (or one
    /// labctl did not make: domain() refuses that).
    const VmDiff* vm_diff(const std::string& vm_name) {
        if (const auto it = m_diffs.find(vm_name); it != m_diffs.end())
            return &it->second;
        const DomainFacts* d = m_existing.find_domain(domain_name(m_spec.project, vm_name));
        const config::VmSpec* vm = m_spec.find_vm(vm_name);
        if (d == nullptr || !d->labctl || vm == nullptr)
            return nullptr;
        return &m_diffs.emplace(vm_name, compare_vm(m_spec, *vm, m_existing)).first->second;
    }

    void check_unique_macs() const {
        std::map<std::string, std::string> seen;
        for (const auto& vm : m_spec.vms) {
            const auto mac = deterministic_mac(m_spec.project, vm.name);
            if (const auto it = seen.find(mac); it != seen.end())
                throw usage_error(fmt::format("VMs '{}' and '{}' would get the same MAC address {}",
                                              it->second, vm.name, mac),
                                  "rename one of them (the MAC is derived from project and VM "
                                  "name)");
            seen.emplace(mac, vm.name);
        }
    }

    void network(const DesiredResource& r) {
        const auto collisions = network_collisions(m_spec, m_existing, m_routes);
        if (!collisions.empty())
            throw preflight(describe_collisions(m_spec, collisions),
                            "choose a free private range for network.cidr, or remove the "
                            "colliding network");
        m_network = m_existing.find_network(r.name);
        if (m_network == nullptr) {
            m_network_created = true;
            add(PlanAction::create, r, r.detail);
            return;
        }
        const auto wanted = config::parse_cidr(m_spec.network.cidr);
        const bool same_range =
            wanted && std::any_of(m_network->subnets.begin(), m_network->subnets.end(),
                                  [&](const config::Ipv4Network& n) {
                                      return n.address == wanted->address &&
                                             n.prefix == wanted->prefix;
                                  });
        if (!same_range)
            throw preflight(
                fmt::format("network '{}' exists with {}, but network.cidr is {}", r.name,
                            m_network->subnets_text(), m_spec.network.cidr),
                fmt::format("set network.cidr to the network's range to use it, choose another "
                            "network.name, or remove the network if it is an old one "
                            "(virsh net-destroy {0}; virsh net-undefine {0})",
                            r.name));
        if (m_network->labctl && m_network->labctl->project != m_spec.project)
            throw preflight(fmt::format("network '{}' belongs to labctl project '{}'", r.name,
                                        m_network->labctl->project),
                            "choose another network.name for this lab");
        std::string detail = r.detail;
        if (!m_network->labctl)
            detail += "; not created by labctl: used as is";
        if (!m_network->active)
            detail += "; inactive: will be started";
        add(PlanAction::keep, r, detail);
    }

    void pool(const DesiredResource& r) {
        m_pool = m_existing.find_pool(r.name);
        if (m_pool == nullptr) {
            if (!m_spec.libvirt.pool_path.empty()) {
                add(PlanAction::create, r, r.detail);
                return;
            }
            if (m_plan.offline) {
                m_plan.warnings.push_back(
                    fmt::format("storage pool '{}' must already exist (not checked offline); set "
                                "libvirt.pool_path to have labctl create it",
                                r.name));
                add(PlanAction::keep, r, "storage pool: must exist (not checked offline)");
                return;
            }
            throw preflight(
                fmt::format("storage pool '{}' does not exist at {}", r.name, m_spec.libvirt.uri),
                fmt::format("create it (virsh pool-define-as {0} dir --target "
                            "/var/lib/libvirt/images; virsh pool-start {0}), or set "
                            "libvirt.pool_path to have labctl create it",
                            r.name));
        }
        std::string detail =
            fmt::format("{} pool at {}", m_pool->type.empty() ? "storage" : m_pool->type,
                        m_pool->path.empty() ? "?" : m_pool->path);
        if (m_pool->active)
            detail += fmt::format(", {} free", approx_size(m_pool->available));
        else
            detail += "; inactive: will be started";
        add(PlanAction::keep, r, detail);
        if (!m_pool->volumes_known)
            m_plan.warnings.push_back(fmt::format(
                "storage pool '{}' is inactive: its volumes could not be listed", r.name));
    }

    const VolumeFacts* find_volume(const std::string& name) const {
        return m_pool != nullptr && m_pool->volumes_known ? m_pool->find_volume(name) : nullptr;
    }

    void volume(const DesiredResource& r) {
        const VolumeFacts* v = find_volume(r.name);
        if (v == nullptr) {
            m_base_created = m_base_created || r.kind == ResourceKind::base_volume;
            add(PlanAction::create, r, r.detail);
            return;
        }
        // A kernel and initrd of the same size may still be new ones: they are uploaded again
        // whenever the base image is (a new image brings its own kernel).
        if (r.kind == ResourceKind::boot_volume && m_base_created) {
            add(PlanAction::replace, r, r.detail + "; with the new base image: uploaded again");
            return;
        }
        if (r.kind == ResourceKind::boot_volume && r.bytes > 0 && v->capacity != r.bytes) {
            add(PlanAction::replace, r,
                fmt::format("{}; size {} -> {}: uploaded again", r.detail, v->capacity, r.bytes));
            return;
        }
        if (r.kind == ResourceKind::overlay_volume) {
            overlay(r, *v);
            return;
        }
        if (r.kind == ResourceKind::seed_volume) {
            // The seed carries the VM's settings: it is rebuilt with its domain.
            const VmDiff* diff = vm_diff(r.vm);
            if (diff != nullptr && diff->change == VmChange::replace) {
                add(PlanAction::replace, r, r.detail + "; rebuilt with its domain");
                return;
            }
        }
        add(PlanAction::keep, r, r.detail);
    }

    void overlay(const DesiredResource& r, const VolumeFacts& v) {
        const VmDiff* diff = vm_diff(r.vm);
        if (diff != nullptr && diff->change == VmChange::replace) {
            add(PlanAction::replace, r,
                fmt::format("{}; recreated with its replaced domain: the data on it is lost",
                            r.detail))
                .loses_data = true;
            return;
        }
        // A smaller disk than the VM has would cut its file system: never done, also not by
        // recreating the disk (its data would be lost without a word).
        if (v.capacity > r.bytes)
            throw usage_error(
                fmt::format("VM '{}': shrinking its disk ({} -> {}) is refused: the data on it "
                            "would be lost",
                            r.vm, approx_size(v.capacity), approx_size(r.bytes)),
                fmt::format("keep disk at {} or more in lab.yaml; to start VM '{}' over with a "
                            "smaller disk: labctl down, then labctl up",
                            approx_size(v.capacity), r.vm));
        if (v.capacity < r.bytes) {
            add(PlanAction::update, r,
                fmt::format("{}; capacity {} -> {}: grown in place, then its file system; its "
                            "data is kept",
                            r.detail, approx_size(v.capacity), approx_size(r.bytes)));
            return;
        }
        // The domain's record still has the old size: the guest's file system has not grown yet.
        if (diff != nullptr && diff->change == VmChange::resize &&
            diff->from.disk_bytes < r.bytes) {
            add(PlanAction::update, r,
                fmt::format("{}; grown to {} already: its file system still to grow", r.detail,
                            approx_size(r.bytes)));
            return;
        }
        add(PlanAction::keep, r, r.detail);
    }

    void dhcp_host(const DesiredResource& r) {
        if (m_network_created || m_network == nullptr) {
            add(PlanAction::create, r, r.detail);
            return;
        }
        for (const auto& h : m_network->dhcp_hosts) {
            if (h.mac != r.mac)
                continue;
            if (h.ip == r.ip && h.name == r.name)
                add(PlanAction::keep, r, r.detail);
            else
                add(PlanAction::replace, r,
                    fmt::format("{}; was {} -> {}", r.detail, h.name.empty() ? "?" : h.name,
                                h.ip.empty() ? "?" : h.ip));
            return;
        }
        for (const auto& h : m_network->dhcp_hosts) {
            if (h.ip != r.ip)
                continue;
            const bool ours_stale = !h.name.empty() && !m_spec_vms.count(h.name) &&
                                    h.mac == deterministic_mac(m_spec.project, h.name);
            if (!ours_stale)
                throw preflight(
                    fmt::format("{} is already reserved for {}{} in network '{}'", r.ip, h.mac,
                                h.name.empty() ? "" : fmt::format(" ({})", h.name),
                                m_network->name),
                    fmt::format("give VM '{}' another ip, or remove that reservation", r.vm));
        }
        add(PlanAction::create, r, r.detail);
    }

    void domain(const DesiredResource& r) {
        const DomainFacts* d = m_existing.find_domain(r.name);
        if (d == nullptr) {
            add(PlanAction::create, r, r.detail);
            return;
        }
        if (!d->labctl)
            throw preflight(
                fmt::format("domain '{}' exists but was not created by labctl", r.name),
                "labctl changes only what it created: rename or remove that domain, or change "
                "'project' in lab.yaml");
        if (d->labctl->project != m_spec.project || d->labctl->vm != r.vm)
            throw preflight(fmt::format("domain '{}' belongs to labctl project '{}' (VM '{}')",
                                        r.name, d->labctl->project, d->labctl->vm),
                            "change 'project' in lab.yaml so the names do not clash");
        const std::string state = d->active ? "running" : "shut off";
        const VmDiff* diff = vm_diff(r.vm);
        if (diff == nullptr || diff->change == VmChange::none ||
            (diff->change == VmChange::resize && !diff->redefines())) {
            add(PlanAction::keep, r, fmt::format("{}; {}", r.detail, state));
            return;
        }
        if (diff->change == VmChange::resize) {
            add(PlanAction::update, r,
                fmt::format("{}; {}: redefined, {}; its disk is kept", r.detail,
                            diff->cpus_memory_text(),
                            d->active ? "then restarted (it is running)"
                                      : "in effect when it starts (shut off)"))
                .restarts = d->active;
            return;
        }
        add(PlanAction::replace, r,
            fmt::format("{}; spec changed (was {}): replaced with a new disk and seed{}", r.detail,
                        d->labctl->spec_hash.empty() ? "unknown" : short_hash(d->labctl->spec_hash),
                        d->active ? " (running: stopped first)" : ""))
            .restarts = d->active;
    }

    void stale() {
        for (const auto& d : m_existing.domains) {
            if (!d.labctl || d.labctl->project != m_spec.project || m_spec_vms.count(d.labctl->vm))
                continue;
            const std::string& vm = d.labctl->vm;
            const auto remove = [&](ResourceKind kind, const std::string& name,
                                    std::string detail) -> PlanItem& {
                return m_plan.items.emplace_back(
                    PlanItem{PlanAction::remove, kind, name, std::move(detail), vm, false, false});
            };
            remove(ResourceKind::domain, d.name,
                   fmt::format("VM '{}' is no longer in lab.yaml{}", vm,
                               d.active ? " (running: it is stopped first)" : ""))
                .restarts = d.active;
            if (const auto disk = overlay_volume_name(m_spec.project, vm); find_volume(disk))
                remove(ResourceKind::overlay_volume, disk,
                       fmt::format("disk of VM '{}': the data on it is lost", vm))
                    .loses_data = true;
            if (const auto seed = seed_volume_name(m_spec.project, vm); find_volume(seed))
                remove(ResourceKind::seed_volume, seed, fmt::format("volume of VM '{}'", vm));
        }
        if (m_network == nullptr)
            return;
        for (const auto& h : m_network->dhcp_hosts) {
            if (h.name.empty() || m_spec_vms.count(h.name) ||
                h.mac != deterministic_mac(m_spec.project, h.name))
                continue;
            m_plan.items.push_back(PlanItem{
                PlanAction::remove, ResourceKind::dhcp_host, h.name,
                fmt::format("{} -> {} in {}", h.mac, h.ip, m_network->name), h.name, false, false});
        }
    }

    const config::LabSpec& m_spec;
    const Inventory& m_existing;
    const std::vector<HostRoute>& m_routes;
    Plan m_plan;
    std::set<std::string> m_spec_vms;
    const NetworkFacts* m_network = nullptr;
    bool m_network_created = false;
    bool m_base_created = false;
    const PoolFacts* m_pool = nullptr;
    std::map<std::string, VmDiff> m_diffs;
};

} // namespace

Plan plan_against(const config::LabSpec& spec, const Inventory& existing,
                  const std::vector<HostRoute>& routes, bool offline) {
    return Planner(spec, existing, routes, offline).run();
}

Plan make_plan(const config::LabSpec& spec, const PlanOptions& options) {
    const std::string& uri = spec.libvirt.uri;
    Inventory existing;
    if (options.offline) {
        existing.uri = uri;
    } else {
        try {
            existing = inspect_libvirt(uri);
        } catch (const Error& e) {
            if (e.code() != ExitCode::preflight)
                throw;
            throw Error(e.code(), e.what(),
                        e.hint().empty()
                            ? "'labctl plan --offline' plans against an empty host"
                            : e.hint() + "; 'labctl plan --offline' plans against an empty host");
        }
    }
    const auto routes = is_local_libvirt_uri(uri) ? read_host_routes(options.route_table)
                                                  : std::vector<HostRoute>{};
    Plan plan = plan_against(spec, existing, routes, options.offline);
    if (options.offline)
        plan.warnings.insert(plan.warnings.begin(),
                             fmt::format("--offline: libvirt at {} was not contacted; this plan "
                                         "assumes nothing exists there yet",
                                         uri));
    return plan;
}

} // namespace labctl::provision
