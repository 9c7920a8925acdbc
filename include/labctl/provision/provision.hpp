#pragma once
// provision, status and down: the lab's libvirt objects made, reported and removed through the
// libvirt C API. A LibvirtSession is one read-write connection; every function also has a form
// that opens its own. Tests keep one session across calls because libvirt's test:///<file> driver
// holds its state only for the life of a connection.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <labctl/config/lab_spec.hpp>
#include <labctl/provision/inventory.hpp>
#include <labctl/provision/plan.hpp>
#include <labctl/provision/wait.hpp>

namespace labctl::provision {

class LibvirtSession {
public:
    /// Opens `uri` read-write; Error(preflight) with libvirt's message and a hint on failure.
    static LibvirtSession open(const std::string& uri);
    LibvirtSession(LibvirtSession&&) noexcept;
    LibvirtSession& operator=(LibvirtSession&&) noexcept;
    ~LibvirtSession();

    const std::string& uri() const;
    /// "QEMU", "TEST"
    std::string driver() const;
    /// Everything the connection sees (like inspect_libvirt, over this connection).
    Inventory inventory() const;

    struct Impl;
    Impl& impl() const { return *m_impl; }

private:
    explicit LibvirtSession(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

/// One thing provision or down did ("create", "start", "replace", "delete", "update").
struct Change {
    std::string action;
    /// "network", "pool", "volume", "dhcp-host", "dns-host", "domain", "snapshot", "filesystem"
    /// (a guest's root file system grown: its name is "<vm>:<device>")
    std::string kind;
    std::string name;
    std::string detail;
    std::string host; ///< the lab host it happened on (set by the *_lab functions)
};

struct ProvisionOptions {
    bool keep_on_failure = false; ///< leave what this run created when it fails
    bool strict = false;          ///< cloud-init status 2 (warnings) is a failure
    int parallel = 1;             ///< VMs provisioned at once
    /// Guest waits (ip, ssh, cloud-init). The test driver has no guests: its VMs are never
    /// waited for, and provision says so.
    bool wait = true;
    WaitDeadlines deadlines;
    /// Makes the probes for a VM's guest; empty = libvirt's (DHCP leases, guest agent, domain
    /// state). Tests substitute their own.
    std::function<std::unique_ptr<GuestProbe>(const config::VmSpec&)> probe_factory;
    /// Called before every step with its name ("network", "pool", "base-volume", "dhcp-host:<vm>",
    /// "overlay:<vm>", "seed:<vm>", "domain:<vm>", "start:<vm>", "wait:<vm>"); tests throw here to
    /// inject a failure.
    std::function<void(std::string_view step)> before_step;
    /// Shared by the runs on a lab's several hosts: set when one fails, so the others stop
    /// (their waits at the next poll, no new VM started). Null: the run's own flag.
    std::atomic<bool>* cancelled = nullptr;
    /// image.url: called (from any host's thread) only when a base volume must be uploaded;
    /// returns the verified local file. The CLI downloads into the image cache here, so a lab
    /// whose base volume exists never touches the network. Empty: image.url is an error.
    std::function<std::string()> fetch_image;
    /// Called with the run's own plan, before anything changes, when it restarts a running VM or
    /// loses data (Plan::disruptive); throws to refuse, and nothing changes. The CLI asks on a
    /// TTY or wants --yes. Empty: allowed.
    std::function<void(const Plan&)> approve;
};

struct VmResult {
    std::string vm;
    std::string domain;
    std::string ip;
    std::string ip_source; ///< "reservation", "lease", "agent"; "" when not waited for
    bool waited = false;
    std::string cloud_init; ///< "done", "degraded" (warnings), "" when not waited for
    std::string host;       ///< the lab host (set by provision_lab)
};

struct ProvisionResult {
    std::vector<Change> changes; ///< empty: nothing to do, the lab was up to date
    std::vector<VmResult> vms;
    std::vector<std::string> notes; ///< e.g. why waits were skipped
};

/// Makes the lab's objects (network, DHCP/DNS hosts, pool, base image, overlays, seeds, domains),
/// starts the domains and waits for them. Errors: the plan's preflight refusals (exit 3), bad
/// image (exit 2), a timed-out wait (exit 4, phase named), cloud-init failure (exit 5), libvirt
/// refusing, losing or failing to read an object once the run has begun, or an object the plan
/// found gone since (exit 9, phase and object named), Ctrl-C (130). On failure whatever this run
/// created is removed unless keep_on_failure.
ProvisionResult provision(const config::LabSpec& spec, LibvirtSession& session,
                          const ProvisionOptions& options = {});
ProvisionResult provision(const config::LabSpec& spec, const ProvisionOptions& options = {});

struct VmStatus {
    std::string vm;
    std::string domain;
    std::string state;   ///< "running", "shut off", "paused", ..., "missing"
    std::string address; ///< the VM's IP (DHCP lease if any, else its reservation) or ""
    /// "current", "to update" (sizes changed: updated in place), "to replace" (its disk too),
    /// "not in lab.yaml", "to create"
    std::string spec;
    std::string host; ///< the lab host (set by status_lab)
};

/// The lab's VMs: those in the spec and those labctl made for this project (by metadata).
std::vector<VmStatus> status(const config::LabSpec& spec, LibvirtSession& session);
std::vector<VmStatus> status(const config::LabSpec& spec);

struct DownOptions {
    bool purge = false; ///< also the base image volume and the VMs' host keys
    /// With purge: leave the host keys and their pins (down_lab removes them once for the lab,
    /// after every host's down).
    bool keep_state = false;
};

/// Removes exactly what labctl made for this project: its domains (by metadata), their volumes,
/// their DHCP/DNS entries, the network when labctl made it for this project and no other domain
/// uses it. Foreign objects are never touched. A second run changes nothing.
std::vector<Change> down(const config::LabSpec& spec, LibvirtSession& session,
                         const DownOptions& options = {});
std::vector<Change> down(const config::LabSpec& spec, const DownOptions& options = {});

/// The XML labctl defines for the network, a VM's overlay and seed volumes and its domain
/// (rendered from templates/libvirt), exposed so tests can parse it back.
std::string network_xml(const config::LabSpec& spec);
std::string overlay_volume_xml(const config::LabSpec& spec, const config::VmSpec& vm,
                               const std::string& backing_path);
std::string seed_volume_xml(const config::LabSpec& spec, const config::VmSpec& vm,
                            std::uint64_t bytes);
/// Pool paths of the kernel and initrd volumes for direct kernel boot (image.kernel); empty:
/// the disk boots itself.
struct BootPaths {
    std::string kernel;
    std::string initrd;
};
/// In network.mode user the domain has no <interface>: SLIRP comes through <qemu:commandline>
/// (slirp_netdev, and a virtio-net-pci device with the VM's MAC at PCI slot 0x10).
std::string domain_xml(const config::LabSpec& spec, const config::VmSpec& vm,
                       const std::string& domain_type, const std::string& disk_path,
                       const std::string& seed_path, const BootPaths& boot = {});
/// The -netdev argument of a VM in network.mode user:
/// "user,id=lab0,restrict=on,hostfwd=tcp:127.0.0.1:2222-:22,...".
std::string slirp_netdev(const config::VmSpec& vm);

/// The virtual size of a qcow2 image (from its header) or the size of a raw file.
std::uint64_t image_virtual_size(const std::string& path, const std::string& format);

} // namespace labctl::provision
