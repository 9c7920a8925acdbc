// status and down: what labctl made for a project, found by its metadata, reported or removed.

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/signals.hpp>
#include <labctl/provision/naming.hpp>
#include <labctl/provision/provision.hpp>
#include <labctl/provision/vm_change.hpp>
#include <labctl/remote/known_hosts.hpp>

#include "libvirt.hpp"
#include "lv_objects.hpp"
#include "provision_parts.hpp"

namespace labctl::provision {

using namespace libvirt;

namespace {

std::string state_name(int state) {
    switch (state) {
    case VIR_DOMAIN_RUNNING:
        return "running";
    case VIR_DOMAIN_BLOCKED:
        return "blocked";
    case VIR_DOMAIN_PAUSED:
        return "paused";
    case VIR_DOMAIN_SHUTDOWN:
        return "shutting down";
    case VIR_DOMAIN_SHUTOFF:
        return "shut off";
    case VIR_DOMAIN_CRASHED:
        return "crashed";
    case VIR_DOMAIN_PMSUSPENDED:
        return "suspended";
    default:
        return "unknown";
    }
}

/// The spec's VMs, then the project's other VMs found by metadata.
std::vector<std::string> lab_vms(const config::LabSpec& spec, const Inventory& inv) {
    std::vector<std::string> out;
    for (const auto& vm : spec.vms)
        out.push_back(vm.name);
    for (const auto& d : inv.domains)
        if (d.labctl && d.labctl->project == spec.project && !d.labctl->vm.empty() &&
            std::find(out.begin(), out.end(), d.labctl->vm) == out.end())
            out.push_back(d.labctl->vm);
    return out;
}

/// "current", "to update" (sizes changed: updated in place) or "to replace".
std::string spec_state(const config::LabSpec& spec, const config::VmSpec& vm,
                       const Inventory& inv) {
    switch (compare_vm(spec, vm, inv).change) {
    case VmChange::none:
        return "current";
    case VmChange::resize:
        return "to update";
    case VmChange::replace:
        return "to replace";
    }
    return "?";
}

} // namespace

std::vector<VmStatus> status(const config::LabSpec& spec, LibvirtSession& session) {
    const Connection& conn = session.impl().conn;
    const Inventory inv = inspect_connection(conn);
    const NetworkFacts* net = inv.find_network(spec.network.name);
    std::vector<VmStatus> out;
    for (const auto& vm : lab_vms(spec, inv)) {
        VmStatus s;
        s.vm = vm;
        s.domain = domain_name(spec.project, vm);
        const DomainFacts* d = inv.find_domain(s.domain);
        const config::VmSpec* vs = spec.find_vm(vm);
        if (d == nullptr || !d->labctl || d->labctl->project != spec.project) {
            s.state = d == nullptr ? "missing" : "foreign (not labctl's)";
            s.spec = vs != nullptr ? "to create" : "not in lab.yaml";
        } else {
            DomainHandle h = conn.find_domain(s.domain);
            int state = 0, reason = 0;
            if (h && virDomainGetState(h.get(), &state, &reason, 0) == 0)
                s.state = state_name(state);
            else
                s.state = d->active ? "running" : "shut off";
            s.spec = vs == nullptr ? "not in lab.yaml" : spec_state(spec, *vs, inv);
        }
        const std::string mac = deterministic_mac(spec.project, vm);
        if (spec.user_network() && vs != nullptr) {
            const auto at = spec.ssh_address(*vs);
            s.address = fmt::format("{}:{} (ssh)", at.host, at.port);
        } else if (net != nullptr) {
            for (const auto& h : net->dhcp_hosts)
                if (h.mac == mac)
                    s.address = h.ip;
            if (d != nullptr && d->active) {
                auto probe = make_libvirt_probe(conn, s.domain, spec.network.name, mac, {});
                if (auto lease = probe->lease_ip())
                    s.address = *lease;
            }
        }
        out.push_back(std::move(s));
    }
    return out;
}

std::vector<VmStatus> status(const config::LabSpec& spec) {
    auto session = LibvirtSession::open(spec.libvirt.uri);
    return status(spec, session);
}

std::vector<Change> down(const config::LabSpec& spec, LibvirtSession& session,
                         const DownOptions& options) {
    const Connection& conn = session.impl().conn;
    const Inventory inv = inspect_connection(conn);
    std::vector<Change> changes;
    const auto changed = [&changes](std::string action, std::string kind, std::string name,
                                    std::string detail = {}) {
        log::info("{} {} {}{}", action, kind, name, detail.empty() ? "" : ": " + detail);
        changes.push_back({std::move(action), std::move(kind), std::move(name), std::move(detail)});
    };
    const std::vector<std::string> vms = lab_vms(spec, inv);

    // Ctrl-C stops the removal between objects (each goes whole or stays, still labelled as the
    // project's): exit 130, and the next down removes the rest.
    // Domains: only those whose metadata names this project.
    for (const auto& d : inv.domains) {
        if (!d.labctl || d.labctl->project != spec.project)
            continue;
        signals::check();
        const auto snapshots = destroy_domain_and_snapshots(conn, d.name, spec.project);
        changed("delete", "domain", d.name, d.active ? "was running" : "");
        for (const auto& s : snapshots)
            changed("delete", "snapshot", s, fmt::format("of domain '{}'", d.name));
    }

    // Volumes: the overlay and seed of each of the lab's VMs; the base image only with purge and
    // only when nothing left uses it.
    StoragePoolHandle pool = conn.find_pool(spec.libvirt.pool);
    if (pool && virStoragePoolIsActive(pool.get()) == 1) {
        // A VM's volumes are labctl's when labctl made its domain, or (a run that failed with
        // --keep-on-failure) when its overlay is backed by the lab's base image volume.
        std::string base_path;
        if (const std::string base = base_volume_name(spec.image); !base.empty())
            if (StorageVolHandle b = Connection::find_volume(pool.get(), base))
                base_path = take_string(virStorageVolGetPath(b.get()));
        const auto ours = [&](const std::string& vm) {
            const DomainFacts* d = inv.find_domain(domain_name(spec.project, vm));
            if (d != nullptr && d->labctl && d->labctl->project == spec.project)
                return true;
            StorageVolHandle o =
                Connection::find_volume(pool.get(), overlay_volume_name(spec.project, vm));
            if (!o || base_path.empty())
                return false;
            const std::string xml = take_string(virStorageVolGetXMLDesc(o.get(), 0));
            return xml.find(fmt::format("<path>{}</path>", base_path)) != std::string::npos;
        };
        for (const auto& vm : vms) {
            if (!ours(vm)) {
                log::debug("VM '{}': no labctl domain and no overlay of the base image: its "
                           "volumes are not touched",
                           vm);
                continue;
            }
            signals::check();
            for (const auto& name :
                 {overlay_volume_name(spec.project, vm), seed_volume_name(spec.project, vm)})
                if (delete_volume(pool.get(), name))
                    changed("delete", "volume", name, fmt::format("of VM '{}'", vm));
        }
        // The kernel and initrd copies carry the project's name and serve only its domains,
        // which are gone by now.
        for (const auto& name :
             {kernel_volume_name(spec.project), initrd_volume_name(spec.project)})
            if (delete_volume(pool.get(), name))
                changed("delete", "volume", name, "direct kernel boot file");
        // A base image volume whose upload never finished (provision's marker is still there:
        // libvirt was lost or labctl killed mid-stream) is no image at all: it goes without
        // --purge, so nothing half-written is left for a later run.
        if (const std::string base = base_volume_name(spec.image); !base.empty()) {
            const std::string marker = upload_marker_path(spec, base);
            if (upload_unfinished(marker)) {
                if (delete_volume(pool.get(), base))
                    changed("delete", "volume", base, "base image whose upload did not finish");
                clear_upload_marker(marker);
            }
        }
        // --purge: the base image volume when nothing uses it any more.
        const auto purge_base = [&](const std::string& name, const std::string& detail) {
            StorageVolHandle v = Connection::find_volume(pool.get(), name);
            if (!v)
                return;
            const std::string path = take_string(virStorageVolGetPath(v.get()));
            bool used = false;
            for (const auto& d : conn.domains()) {
                const auto files = domain_use(take_string(virDomainGetXMLDesc(d.get(), 0))).files;
                used = used || std::find(files.begin(), files.end(), path) != files.end();
            }
            for (const auto& other : Connection::volumes(pool.get())) {
                const std::string xml = take_string(virStorageVolGetXMLDesc(other.get(), 0));
                const bool backed =
                    xml.find(fmt::format("<path>{}</path>", path)) != std::string::npos;
                used = used || (backed && virStorageVolGetName(other.get()) != name);
            }
            if (used)
                log::warn("--purge: base image volume '{}' is still used by another volume "
                          "or domain: kept",
                          name);
            else if (delete_volume(pool.get(), name))
                changed("delete", "volume", name, detail);
        };
        const std::string base = base_volume_name(spec.image);
        if (options.purge && !base.empty())
            purge_base(base, "base image (--purge)");
        if (options.purge && spec.image.labctl_built()) {
            // Earlier builds of the same image (another inputs hash) left their own base
            // volumes: the cache can upload them again in a second, so unused ones go too.
            const std::string prefix = fmt::format("labctl-{}-", spec.image.build->suite);
            std::vector<std::string> stale;
            for (const auto& v : Connection::volumes(pool.get())) {
                const std::string name = virStorageVolGetName(v.get());
                if (name != base && name.rfind(prefix, 0) == 0)
                    stale.push_back(name);
            }
            for (const auto& name : stale)
                purge_base(name, "an earlier labctl-built base image (--purge)");
        }
    }

    // DHCP and DNS entries of the lab's VMs (their MACs are the project's), then the network
    // when labctl made it for this project and no domain uses it any more.
    if (NetworkHandle net = conn.find_network(spec.network.name)) {
        const HostEntries entries = read_host_entries(net.get());
        for (const auto& vm : vms) {
            const std::string mac = deterministic_mac(spec.project, vm);
            std::string ip;
            for (const auto& h : entries.dhcp)
                if (h.mac == mac)
                    ip = h.ip;
            if (ip.empty())
                continue;
            signals::check();
            remove_host_entries(net.get(), mac, ip, vm);
            changed("delete", "dhcp-host", vm, fmt::format("{} -> {}", mac, ip));
        }
        const NetworkFacts* facts = inv.find_network(spec.network.name);
        if (facts != nullptr && facts->labctl && facts->labctl->project == spec.project) {
            std::vector<std::string> users;
            for (const auto& d : conn.domains()) {
                const auto nets = domain_use(take_string(virDomainGetXMLDesc(d.get(), 0))).networks;
                if (std::find(nets.begin(), nets.end(), spec.network.name) != nets.end())
                    users.push_back(virDomainGetName(d.get()));
            }
            if (users.empty()) {
                destroy_network(conn, spec.network.name);
                changed("delete", "network", spec.network.name);
            } else {
                log::warn("network '{}' is still used by {}: kept", spec.network.name,
                          fmt::join(users, ", "));
            }
        }
    }

    if (options.purge && !options.keep_state)
        if (auto c = purge_host_keys(spec, std::nullopt))
            changes.push_back(std::move(*c));
    if (changes.empty())
        log::info("nothing to remove: no objects of project '{}' at {}", spec.project,
                  spec.libvirt.uri);
    return changes;
}

std::optional<Change> purge_host_keys(const config::LabSpec& spec,
                                      const std::optional<std::vector<std::string>>& only) {
    namespace fs = std::filesystem;
    const fs::path keys = fs::path(spec.state_dir()) / "hostkeys";
    std::error_code ec;
    const auto wanted = [&](const std::string& vm) {
        return !only || std::find(only->begin(), only->end(), vm) != only->end();
    };
    // Every pin of the VMs' keys goes, under whatever address it was made (an ip that changed
    // since), then the current addresses' entries, then the keys themselves.
    std::vector<std::string> pinned;
    for (const auto& entry : fs::recursive_directory_iterator(keys, ec))
        if (entry.path().extension() == ".pub" &&
            wanted(entry.path().parent_path().filename().string()))
            if (std::ifstream in(entry.path()); in)
                for (std::string line; std::getline(in, line);)
                    pinned.push_back(line);
    if (fs::exists(spec.ssh.known_hosts, ec)) {
        remote::forget_host_keys(spec.ssh.known_hosts, pinned);
        for (const auto& vm : spec.vms) {
            if (!wanted(vm.name))
                continue;
            const auto at = spec.ssh_address(vm);
            if (!remote::find_known_hosts(spec.ssh.known_hosts, at.host, at.port).empty())
                remote::pin_host_keys(spec.ssh.known_hosts, at.host, at.port, {});
        }
    }
    if (!fs::exists(keys, ec))
        return std::nullopt;
    if (!only) {
        fs::remove_all(keys, ec);
        log::info("delete state {}: the VMs' SSH host keys", keys.string());
        return Change{"delete", "state", keys.string(), "the VMs' SSH host keys", {}};
    }
    std::vector<std::string> removed;
    for (const auto& vm : *only)
        if (fs::exists(keys / vm, ec)) {
            fs::remove_all(keys / vm, ec);
            removed.push_back(vm);
        }
    if (removed.empty())
        return std::nullopt;
    log::info("delete state {}: the SSH host keys of {}", keys.string(), fmt::join(removed, ", "));
    return Change{"delete",
                  "state",
                  keys.string(),
                  fmt::format("the SSH host keys of {}", fmt::join(removed, ", ")),
                  {}};
}

std::vector<Change> down(const config::LabSpec& spec, const DownOptions& options) {
    auto session = LibvirtSession::open(spec.libvirt.uri);
    return down(spec, session, options);
}

} // namespace labctl::provision
