#pragma once
// Facts about this host's virtualisation stack: the libvirt library, /dev/kvm, the routing table
// and free disk space.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <labctl/config/ipv4.hpp>

namespace labctl::provision {

/// The libvirt library version labctl runs with, "9.0.0".
std::string libvirt_library_version();

/// Whether KVM really works here: /dev/kvm opens read-write, KVM_GET_API_VERSION answers 12 and
/// KVM_CREATE_VM succeeds (the VM is closed again at once).
struct KvmProbe {
    bool usable = false;
    std::string detail; ///< "KVM API 12" or why not ("open /dev/kvm: Permission denied")
};
KvmProbe probe_kvm(const std::string& device = "/dev/kvm");

/// One IPv4 route of the host's main table.
struct HostRoute {
    std::string interface;
    config::Ipv4Network destination;
    std::string gateway; ///< "" for on-link routes
};

/// Parses the text of /proc/net/route (header line, then one route per line, hex little-endian).
/// Lines that do not parse are skipped.
std::vector<HostRoute> parse_host_routes(std::string_view text);
/// Reads and parses `path`; an unreadable file gives no routes.
std::vector<HostRoute> read_host_routes(const std::string& path = "/proc/net/route");

/// Free bytes for an unprivileged user on the file system that holds `path`, or that would hold
/// it (the nearest existing ancestor is measured); nullopt when nothing can be measured.
std::optional<std::uint64_t> free_bytes(const std::string& path);

/// True for a libvirt URI without a remote host part (qemu:///system, test:///default).
bool is_local_libvirt_uri(std::string_view uri);

} // namespace labctl::provision
