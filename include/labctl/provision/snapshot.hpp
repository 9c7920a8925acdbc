#pragma once
// Lab snapshots: one named snapshot of every VM of the lab, on every host, made and reverted as
// a whole (all or none).
//
// The kind: libvirt's internal snapshots (a system checkpoint: the disk inside the VM's qcow2
// overlay, and the RAM and device state of a running VM, in the same file). They work with an
// overlay on a backing base image (only the overlay is written; the base stays read-only and
// shared) and with direct kernel boot (the kernel and initrd are read-only files outside the
// snapshot). External snapshots would add a file per snapshot to every chain, and libvirt 9.0
// (Debian 12) cannot revert to them (that came with 9.9). Internal snapshots need every writable
// disk to be qcow2: the overlays are; the cloud-init seed is a read-only CD-ROM.
//
// Running VMs are all paused before the first snapshot and resumed after the last, so the
// snapshots of a lab of several VMs show one instant. A snapshot carries labctl's marker in its
// description: `labctl {"project":..,"snapshot":..,"created":..,"vms":[..]}`; only those are
// listed, restored or deleted.

#include <string>
#include <vector>

#include <labctl/config/lab_spec.hpp>
#include <labctl/provision/lab.hpp>
#include <labctl/provision/provision.hpp>

namespace labctl::provision {

struct SnapshotInfo {
    std::string name;
    std::string created;              ///< UTC, ISO 8601, as labctl recorded it
    std::vector<std::string> vms;     ///< the lab's VMs that hold it
    std::vector<std::string> missing; ///< the lab's VMs that do not (it cannot be restored)
    std::string state; ///< "disk+memory" (the VM ran: restored running) or "disk" (it was off)
};

/// Throws Error(usage) unless `name` is 1-64 of [A-Za-z0-9._-], not starting with '.' or '-'.
void check_snapshot_name(const std::string& name);

/// Snapshots every VM of the lab as `name`. Every VM must exist and none may hold `name` yet
/// (exit 2). On any failure (or Ctrl-C) the snapshots this call made are deleted and paused VMs
/// resumed; the error is Error(provision) naming the VM.
std::vector<Change> snapshot_save(const config::LabSpec& spec, const std::string& name,
                                  const HostSessions& sessions = {});

/// labctl's snapshots of the lab's VMs, oldest first.
std::vector<SnapshotInfo> snapshot_list(const config::LabSpec& spec,
                                        const HostSessions& sessions = {});

/// Reverts every VM to `name` and leaves it running (exit 2 when a VM lacks it: nothing is
/// reverted), then asks each VM's guest agent to set its clock from the host (best effort,
/// bounded): a restored guest's clock is the snapshot's.
std::vector<Change> snapshot_restore(const config::LabSpec& spec, const std::string& name,
                                     const HostSessions& sessions = {});

/// Deletes `name` from every VM that holds it (exit 2 when none does).
std::vector<Change> snapshot_delete(const config::LabSpec& spec, const std::string& name,
                                    const HostSessions& sessions = {});

} // namespace labctl::provision
