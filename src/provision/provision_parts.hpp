#pragma once
// Private to src/provision: the pieces provision.cpp is built from (rendering in render.cpp,
// streaming uploads in upload.cpp, the image file checks in image_file.cpp).

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <labctl/config/lab_spec.hpp>
#include <labctl/provision/lab.hpp>
#include <labctl/provision/provision.hpp>

#include "journal.hpp"
#include "libvirt.hpp"

namespace labctl::provision {

/// destroy_domain for a domain that may hold labctl snapshots (snapshot.cpp): they live in its
/// overlay and libvirt's metadata of it, so they go with it. Returns their names, for down and a
/// replaced VM to report (empty when it had none or they could not be read).
std::vector<std::string> destroy_domain_and_snapshots(const libvirt::Connection& conn,
                                                      const std::string& domain,
                                                      const std::string& project);

/// The base image file to upload: image.path, or image.url downloaded by options.fetch_image
/// (image_file.cpp); Error(usage) when the URL needs a download this command does not make.
std::string base_image_file(const config::ImageSpec& image, const ProvisionOptions& options);

/// The session of host i of a lab: the caller's, or one opened (and kept in `owned`) for this
/// call (lab.cpp).
LibvirtSession& session_for(const HostSessions& sessions, std::size_t i, const std::string& uri,
                            std::optional<LibvirtSession>& owned);

/// One host's provisioning in a lab of several (lab.cpp): run() is provision() for the host's
/// view of the lab; after it succeeded, undo() removes what it made when another host failed.
class HostProvisioning {
public:
    HostProvisioning(const config::LabSpec& host_view, LibvirtSession& session,
                     const ProvisionOptions& options);
    ~HostProvisioning();
    HostProvisioning(const HostProvisioning&) = delete;
    HostProvisioning& operator=(const HostProvisioning&) = delete;
    ProvisionResult run();
    Journal::Outcome undo();

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

/// down --purge's local part: the VMs' host keys (all, or those of `only`) and every pin of them
/// in known_hosts. The change to report, or nullopt when there was nothing.
std::optional<Change> purge_host_keys(const config::LabSpec& spec,
                                      const std::optional<std::vector<std::string>>& only);

/// Defines, starts and autostarts the lab's NAT network (shared_objects.cpp); the journal
/// removes it should the run fail.
libvirt::NetworkHandle create_network(const libvirt::Connection& conn, const config::LabSpec& spec,
                                      Journal& journal);

/// Defines, builds, starts and autostarts the dir pool at libvirt.pool_path; the journal removes it
/// should the run fail.
libvirt::StoragePoolHandle create_pool(const libvirt::Connection& conn, const config::LabSpec& spec,
                                       Journal& journal);

/// network.mode user: Error(preflight) when a forward's host port is taken on 127.0.0.1 by
/// anything but the VM's own running domain (QEMU would fail the start half-way with a terse
/// error). Not checked for a remote libvirt host.
void check_forward_ports(const config::LabSpec& spec, const Inventory& existing);

/// labctl's <metadata> element of the VM's domain: project, VM, spec hash and the sizes it was
/// made with, and labctl's version (render.cpp); see labctl_metadata_xml for declare_namespace.
std::string domain_metadata_xml(const config::LabSpec& spec, const config::VmSpec& vm,
                                bool declare_namespace = true);

/// Where libvirt writes the serial console log of `domain` for this URI.
std::string console_log_path(const std::string& uri, const std::string& domain);

/// Error(usage) when a VM's disk is smaller than the image (`image_size` > 0).
void check_disk_sizes(const config::LabSpec& spec, std::uint64_t image_size);

/// Throws Error(usage) when the qcow2 file at `path` is cut short: its header, L1/L2 tables,
/// refcount structures and every data or compressed cluster they reference must lie inside the
/// file. A raw file has no metadata: nothing is checked (only image.sha256 can tell).
void check_image_complete(const std::string& path, const std::string& format);

/// <state_dir>/uploads/<volume>.unfinished: present from before a base image volume is created
/// until its upload finished, so a volume cut short (libvirt lost mid-stream, labctl killed) is
/// uploaded again by the next provision and removed by down instead of being trusted.
std::string upload_marker_path(const config::LabSpec& spec, const std::string& volume);
void mark_upload_unfinished(const std::string& marker, const std::string& uri);
bool upload_unfinished(const std::string& marker);
void clear_upload_marker(const std::string& marker);

/// Streams a volume's contents through libvirt (works over remote URIs). The test driver keeps
/// no volume contents: there the upload is skipped and `note` is told.
struct Uploader {
    const libvirt::Connection& conn;
    bool test_driver = false;
    std::function<void(std::string)> note;

    /// Streams `path` (exactly `bytes` long) into the volume; on the test driver it is only
    /// read. Every read is checked (a short or failed read is an error, never a truncated
    /// volume), and the SHA-256 of what was read must equal `sha256` when set before the stream
    /// is finished. Returns whether the contents were uploaded. libvirt failures are
    /// Error(provision) ("provision: uploading volume '<name>' failed: ..."); a bad file is
    /// Error(usage).
    bool file(virStorageVolPtr vol, const std::string& name, const std::string& path,
              std::uint64_t bytes, const std::string& sha256) const;
    /// Streams `data` into the volume.
    void bytes(virStorageVolPtr vol, const std::string& name, const std::string& data) const;
};

} // namespace labctl::provision
