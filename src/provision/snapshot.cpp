#include <fmt/chrono.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <libvirt/libvirt.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include <labctl/core/duration.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/progress.hpp>
#include <labctl/core/scope_guard.hpp>
#include <labctl/core/signals.hpp>
#include <labctl/core/text.hpp>
#include <labctl/provision/naming.hpp>
#include <labctl/provision/snapshot.hpp>

#include "libvirt.hpp"
#include "lv_objects.hpp"
#include "provision_parts.hpp"
#include "xml.hpp"

namespace labctl::provision {

namespace {

using SnapshotHandle = libvirt::CHandle<virDomainSnapshot, virDomainSnapshotFree>;
constexpr std::string_view k_marker = "labctl ";

/// One VM of the lab with its domain, on the host's connection.
struct LabVm {
    std::string vm;
    std::string host;
    const libvirt::Connection* conn = nullptr;
    libvirt::DomainHandle domain;
};

/// The lab's VMs on every host, each found by its domain name; the sessions live as long as this.
class LabVms {
public:
    LabVms(const config::LabSpec& spec, const HostSessions& sessions) : m_owned(spec.hosts.size()) {
        for (std::size_t i = 0; i < spec.hosts.size(); ++i) {
            const auto view = spec.for_host(spec.hosts[i]);
            auto& session = session_for(sessions, i, view.libvirt.uri, m_owned[i]);
            const auto& conn = session.impl().conn;
            for (const auto& vm : view.vms)
                vms.push_back({vm.name, spec.hosts[i].name, &conn,
                               conn.find_domain(domain_name(spec.project, vm.name))});
        }
    }
    /// Error(usage) naming the VMs that are not provisioned.
    void require_all() const {
        std::vector<std::string> missing;
        for (const auto& v : vms)
            if (!v.domain)
                missing.push_back(v.vm);
        if (!missing.empty())
            throw usage_error(fmt::format("not provisioned: {}", fmt::join(missing, ", ")),
                              "run 'labctl up' first; a snapshot holds every VM of the lab");
    }
    std::vector<LabVm> vms;

private:
    std::vector<std::optional<LibvirtSession>> m_owned;
};

SnapshotHandle find_snapshot(const LabVm& v, const std::string& name) {
    SnapshotHandle s(virDomainSnapshotLookupByName(v.domain.get(), name.c_str(), 0));
    if (!s) {
        const auto e = libvirt::take_last_error();
        if (e.code != VIR_ERR_NO_DOMAIN_SNAPSHOT)
            throw libvirt::operation_error(
                v.conn->get(), fmt::format("looking up snapshot '{}' of '{}'", name, v.vm), e);
    }
    return s;
}

struct Parsed {
    std::string name;
    std::string state;
    nlohmann::json marker; ///< labctl's description; null when not labctl's
};

Parsed parse_snapshot(const LabVm& v, virDomainSnapshotPtr snap) {
    libvirt::CString xml(virDomainSnapshotGetXMLDesc(snap, 0));
    if (!xml)
        libvirt::throw_operation_error(v.conn->get(),
                                       fmt::format("reading a snapshot of '{}'", v.vm));
    const auto root = xml::parse(xml.get());
    // A running VM is paused for its snapshot (one instant for the lab), so libvirt records
    // "paused": what matters is whether RAM and device state were saved with the disk.
    const auto state = root.child_text("state");
    Parsed p{root.child_text("name"), state == "shutoff" ? "disk" : "disk+memory", nullptr};
    const auto description = root.child_text("description");
    if (description.starts_with(k_marker)) {
        try {
            p.marker = nlohmann::json::parse(description.substr(k_marker.size()));
        } catch (const nlohmann::json::exception&) {
            p.marker = nullptr; // not written by labctl after all
        }
    }
    return p;
}

/// labctl's snapshots of one VM, by name.
std::map<std::string, Parsed> labctl_snapshots(const LabVm& v, const std::string& project) {
    std::map<std::string, Parsed> out;
    virDomainSnapshotPtr* list = nullptr;
    const int n = virDomainListAllSnapshots(v.domain.get(), &list, 0);
    if (n < 0)
        libvirt::throw_operation_error(v.conn->get(),
                                       fmt::format("listing the snapshots of '{}'", v.vm));
    std::vector<SnapshotHandle> owned;
    for (int i = 0; i < n; ++i)
        owned.emplace_back(list[i]);
    std::free(list);
    for (const auto& s : owned) {
        auto p = parse_snapshot(v, s.get());
        if (p.marker.is_object() && p.marker.value("project", "") == project)
            out.emplace(p.name, std::move(p));
    }
    return out;
}

std::string now_utc() {
    return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}",
                       std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()));
}

bool running(const LabVm& v) {
    int state = 0, reason = 0;
    return virDomainGetState(v.domain.get(), &state, &reason, 0) == 0 &&
           state == VIR_DOMAIN_RUNNING;
}

void delete_snapshot(const LabVm& v, const std::string& name) {
    if (auto s = find_snapshot(v, name); s && virDomainSnapshotDelete(s.get(), 0) != 0)
        libvirt::throw_operation_error(v.conn->get(),
                                       fmt::format("deleting snapshot '{}' of '{}'", name, v.vm));
}

/// The VMs' guest clocks from the host's, through the guest agent, each bounded by 10 s; a guest
/// without an agent keeps its clock (and the time source in it corrects it later).
void sync_clock(const LabVm& v) {
    if (virDomainAgentSetResponseTimeout(v.domain.get(), 10, 0) != 0 ||
        virDomainSetTime(v.domain.get(), 0, 0, VIR_DOMAIN_TIME_SYNC) != 0) {
        const auto e = libvirt::take_last_error();
        log::info("snapshot: the clock of '{}' was not set from the host ({}): it runs from the "
                  "snapshot's time until its time sync corrects it",
                  v.vm, e.message);
        return;
    }
    log::debug("snapshot: the clock of '{}' was set from the host", v.vm);
}

} // namespace

std::vector<std::string> destroy_domain_and_snapshots(const libvirt::Connection& conn,
                                                      const std::string& domain,
                                                      const std::string& project) {
    LabVm v{domain, "", &conn, conn.find_domain(domain)};
    std::vector<std::string> out;
    if (!v.domain)
        return out;
    try {
        for (const auto& [name, p] : labctl_snapshots(v, project))
            out.push_back(name);
    } catch (const Error& e) {
        log::debug("the snapshots of '{}' could not be listed: {}", domain, e.what());
    }
    v.domain.reset();
    destroy_domain(conn, domain);
    return out;
}

void check_snapshot_name(const std::string& name) {
    const bool ok = !name.empty() && name.size() <= 64 && name.front() != '.' &&
                    name.front() != '-' && std::all_of(name.begin(), name.end(), [](char c) {
                        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                               (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
                    });
    if (!ok)
        throw usage_error(fmt::format("'{}' is not a snapshot name", name),
                          "1-64 letters, digits, '.', '_' and '-', e.g. before-upgrade");
}

std::vector<Change> snapshot_save(const config::LabSpec& spec, const std::string& name,
                                  const HostSessions& sessions) {
    check_snapshot_name(name);
    LabVms lab(spec, sessions);
    lab.require_all();
    for (const auto& v : lab.vms)
        if (find_snapshot(v, name))
            throw usage_error(fmt::format("'{}' already has a snapshot '{}'", v.vm, name),
                              fmt::format("delete it first (labctl snapshot delete {}), or "
                                          "choose another name",
                                          name));
    std::vector<std::string> names;
    for (const auto& v : lab.vms)
        names.push_back(v.vm);
    const nlohmann::json marker{
        {"project", spec.project}, {"snapshot", name}, {"created", now_utc()}, {"vms", names}};
    const std::string xml =
        fmt::format("<domainsnapshot><name>{}</name><description>{}{}</description>"
                    "</domainsnapshot>",
                    xml_escape(name), k_marker, xml_escape(marker.dump()));

    // One instant for the whole lab: every running VM is paused first, resumed at the end (also
    // on failure).
    std::vector<const LabVm*> paused;
    ScopeGuard resume([&] {
        for (const auto* v : paused)
            if (virDomainResume(v->domain.get()) != 0)
                log::warn("snapshot: could not resume '{}': {}", v->vm,
                          libvirt::take_last_error().message);
    });
    for (const auto& v : lab.vms) {
        if (!running(v))
            continue;
        if (virDomainSuspend(v.domain.get()) != 0)
            libvirt::throw_operation_error(v.conn->get(), fmt::format("pausing '{}'", v.vm));
        paused.push_back(&v);
    }
    std::vector<const LabVm*> made;
    ScopeGuard undo([&] {
        for (const auto* v : made) {
            try {
                delete_snapshot(*v, name);
            } catch (const std::exception& e) {
                log::warn("snapshot: could not delete the partial snapshot of '{}': {}", v->vm,
                          e.what());
            }
        }
    });
    std::vector<Change> changes;
    for (const auto& v : lab.vms) {
        signals::check();
        Progress progress(fmt::format("snapshot {}", v.vm));
        progress.show(running(v) || std::find(paused.begin(), paused.end(), &v) != paused.end()
                          ? "saving disk, memory and device state"
                          : "saving disk state");
        SnapshotHandle s(virDomainSnapshotCreateXML(v.domain.get(), xml.c_str(),
                                                    VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC));
        if (!s)
            libvirt::throw_operation_error(v.conn->get(),
                                           fmt::format("snapshot '{}' of '{}'", name, v.vm));
        made.push_back(&v);
        const auto state = parse_snapshot(v, s.get()).state;
        changes.push_back(
            {"create", "snapshot", name,
             fmt::format("of VM '{}' ({}, {})", v.vm, state, format_duration(progress.elapsed())),
             v.host});
    }
    signals::check();
    undo.dismiss();
    return changes;
}

std::vector<SnapshotInfo> snapshot_list(const config::LabSpec& spec, const HostSessions& sessions) {
    LabVms lab(spec, sessions);
    std::map<std::string, SnapshotInfo> by_name;
    for (const auto& v : lab.vms) {
        if (!v.domain)
            continue;
        for (const auto& [name, p] : labctl_snapshots(v, spec.project)) {
            auto& info = by_name[name];
            info.name = name;
            info.created = p.marker.value("created", "");
            if (info.state.empty())
                info.state = p.state;
            info.vms.push_back(v.vm);
        }
    }
    std::vector<SnapshotInfo> out;
    for (auto& [name, info] : by_name) {
        for (const auto& v : lab.vms)
            if (std::find(info.vms.begin(), info.vms.end(), v.vm) == info.vms.end())
                info.missing.push_back(v.vm);
        out.push_back(std::move(info));
    }
    std::stable_sort(out.begin(), out.end(), [](const SnapshotInfo& a, const SnapshotInfo& b) {
        return a.created < b.created;
    });
    return out;
}

std::vector<Change> snapshot_restore(const config::LabSpec& spec, const std::string& name,
                                     const HostSessions& sessions) {
    check_snapshot_name(name);
    LabVms lab(spec, sessions);
    lab.require_all();
    // All or none: every VM must hold labctl's snapshot before the first is reverted.
    std::vector<SnapshotHandle> snaps;
    std::vector<std::string> lacking;
    for (const auto& v : lab.vms) {
        auto s = find_snapshot(v, name);
        if (s && !parse_snapshot(v, s.get()).marker.is_object())
            s.reset(); // the same name, made by someone else
        if (!s)
            lacking.push_back(v.vm);
        snaps.push_back(std::move(s));
    }
    if (!lacking.empty())
        throw usage_error(fmt::format("no labctl snapshot '{}' on {}: nothing was reverted", name,
                                      fmt::join(lacking, ", ")),
                          "labctl snapshot list shows the lab's snapshots");
    std::vector<Change> changes;
    for (std::size_t i = 0; i < lab.vms.size(); ++i) {
        const auto& v = lab.vms[i];
        signals::check();
        Progress progress(fmt::format("restore {}", v.vm));
        progress.show("reverting");
        if (virDomainRevertToSnapshot(snaps[i].get(), VIR_DOMAIN_SNAPSHOT_REVERT_RUNNING) != 0)
            libvirt::throw_operation_error(
                v.conn->get(), fmt::format("reverting '{}' to snapshot '{}'", v.vm, name));
        changes.push_back(
            {"revert", "domain", domain_name(spec.project, v.vm),
             fmt::format("to snapshot '{}' ({})", name, format_duration(progress.elapsed())),
             v.host});
    }
    for (const auto& v : lab.vms)
        sync_clock(v);
    return changes;
}

std::vector<Change> snapshot_delete(const config::LabSpec& spec, const std::string& name,
                                    const HostSessions& sessions) {
    check_snapshot_name(name);
    LabVms lab(spec, sessions);
    std::vector<Change> changes;
    for (const auto& v : lab.vms) {
        if (!v.domain)
            continue;
        const auto mine = labctl_snapshots(v, spec.project);
        if (!mine.contains(name))
            continue;
        delete_snapshot(v, name);
        changes.push_back({"delete", "snapshot", name, fmt::format("of VM '{}'", v.vm), v.host});
    }
    if (changes.empty())
        throw usage_error(fmt::format("the lab has no snapshot '{}'", name),
                          "labctl snapshot list shows the lab's snapshots");
    return changes;
}

} // namespace labctl::provision
