#pragma once
// Private to src/provision: a VM updated in place (vm_change.hpp) without losing its disk: the
// overlay grown while the VM runs or is shut off, the domain redefined under its own UUID and
// restarted, labctl's metadata rewritten, and the guest's root file system grown over SSH.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include <labctl/config/lab_spec.hpp>
#include <labctl/provision/provision.hpp>
#include <labctl/remote/session.hpp>

#include "journal.hpp"
#include "libvirt.hpp"

namespace labctl::provision {

/// Grows the volume to `bytes`: through the running domain (virDomainBlockResize on its disk
/// `target`, so QEMU and the guest see the new size at once) when `dom` is active, else with
/// virStorageVolResize. Error(provision) naming the volume and libvirt's message otherwise.
void grow_disk(const libvirt::Connection& conn, virDomainPtr dom, const std::string& target,
               virStorageVolPtr vol, const std::string& name, std::uint64_t bytes);

/// New cpus or memory: defines `xml` as the new definition of `dom` under its UUID (its disk, seed
/// and snapshots stay), puts the old definition back through `journal` should the run fail
/// later, and shuts a running domain down (guest agent or ACPI, powered off after `shutdown`) so
/// that it starts with them. Returns what happened ("redefined, shut down to start with them").
/// Error(provision) when libvirt refuses; Error(interrupted) on Ctrl-C or `cancelled`.
std::string redefine_and_stop(const libvirt::Connection& conn, virDomainPtr dom, std::string xml,
                              Journal& journal, std::chrono::milliseconds shutdown,
                              const std::atomic<bool>* cancelled);

/// Replaces labctl's <metadata> element of the domain's definition (and of the running domain);
/// `metadata_xml` without the namespace declaration (domain_metadata_xml(..., false)).
void set_domain_metadata(const libvirt::Connection& conn, virDomainPtr dom,
                         const std::string& metadata_xml);

/// What grow_guest_filesystem did.
struct FilesystemGrowth {
    std::string source;       ///< the root file system's device, "/dev/vda" or "/dev/vda1"
    std::string fstype;       ///< "ext4", "xfs", "btrfs"
    std::uint64_t before = 0; ///< its size in bytes before
    std::uint64_t after = 0;  ///< and after
};

/// The guest side of a grown disk, over SSH as `ssh` (sudo): waits up to 30 s for the kernel to
/// see the disk at `bytes`, grows the root partition when there is one (growpart), then the file
/// system online (resize2fs, xfs_growfs, btrfs). Error(provision) with the guest's message when a
/// step fails (growpart missing, an unknown file system).
FilesystemGrowth grow_guest_filesystem(const remote::ConnectOptions& ssh, std::uint64_t bytes,
                                       const std::atomic<bool>* cancelled);

/// After the wait for a VM whose disk grew: its root file system grown over `ssh`
/// (grow_guest_filesystem), then the disk's new size recorded in the domain's metadata — only
/// now, so a run that fails before this grows the file system again. Returns the change to
/// report ("update filesystem <vm>:<device>").
Change finish_disk_growth(const libvirt::Connection& conn, virDomainPtr dom,
                          const config::LabSpec& spec, const config::VmSpec& vm,
                          const remote::ConnectOptions& ssh, const std::atomic<bool>* cancelled);

/// Reads the line the guest's script ends with, "labctl-grown SOURCE FSTYPE BEFORE AFTER";
/// empty source when the output has none.
FilesystemGrowth parse_growth(const std::string& output);

} // namespace labctl::provision
