#pragma once
// The desired state of a lab: every libvirt object its LabSpec asks for, in creation order.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <labctl/config/lab_spec.hpp>

namespace labctl::provision {

enum class ResourceKind {
    network,        ///< the NAT network (network.mode nat only)
    pool,           ///< the storage pool
    base_volume,    ///< the base image every disk is an overlay of
    boot_volume,    ///< the lab's copy of image.kernel or image.initrd (direct kernel boot)
    dhcp_host,      ///< the VM's DHCP host reservation in the network (nat only)
    overlay_volume, ///< the VM's qcow2 overlay disk
    seed_volume,    ///< the VM's cloud-init NoCloud seed
    domain,         ///< the VM
};

/// The KIND column: "network", "pool", "volume" (all three volume kinds), "dhcp-host", "domain".
std::string_view kind_name(ResourceKind kind);

struct DesiredResource {
    ResourceKind kind;
    std::string name;   ///< libvirt name (for dhcp_host: the VM's host name)
    std::string detail; ///< one human line
    std::string vm;     ///< the VM it belongs to; "" for shared objects

    // For comparison with what exists:
    std::string mac;         ///< dhcp_host, domain
    std::string ip;          ///< dhcp_host, domain
    std::uint64_t bytes = 0; ///< overlay_volume: capacity; boot_volume: file size (0: unknown)
    std::string source;      ///< boot_volume: the local file uploaded
    std::string spec_hash;   ///< domain
};

/// Everything the spec asks for, in creation order: network (mode nat), pool, base image, kernel
/// and initrd (direct kernel boot), then per VM its DHCP reservation (mode nat), overlay, seed and
/// domain.
std::vector<DesiredResource> desired_resources(const config::LabSpec& spec);

} // namespace labctl::provision
