#pragma once
// What exists in libvirt, read once (read-only) and held as plain data, so that plans and checks
// are pure functions of (LabSpec, Inventory) and unit-testable without libvirt.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <labctl/config/ipv4.hpp>
#include <labctl/provision/naming.hpp>

namespace labctl::provision {

struct DhcpHost {
    std::string mac; ///< lowercase
    std::string name;
    std::string ip;
};

struct DnsHostFacts {
    std::string ip;
    std::vector<std::string> hostnames;
};

struct NetworkFacts {
    std::string name;
    bool active = false;
    std::string forward_mode;                 ///< "nat", "route", "" (isolated), ...
    std::string bridge;                       ///< bridge device name, e.g. "virbr1"
    std::vector<config::Ipv4Network> subnets; ///< its IPv4 <ip> elements
    std::vector<DhcpHost> dhcp_hosts;
    std::vector<DnsHostFacts> dns_hosts;  ///< <dns><host> entries
    std::optional<LabctlMetadata> labctl; ///< present when labctl created it

    /// "10.66.77.0/24, 10.0.0.0/8" or "no IPv4 address"
    std::string subnets_text() const;
};

struct VolumeFacts {
    std::string name;
    std::string path;
    std::uint64_t capacity = 0;
};

struct PoolFacts {
    std::string name;
    std::string type; ///< "dir", "logical", ...
    std::string path; ///< target path
    bool active = false;
    std::uint64_t capacity = 0;
    std::uint64_t available = 0;
    bool volumes_known = false; ///< false for an inactive pool: its volumes cannot be listed
    std::vector<VolumeFacts> volumes;

    const VolumeFacts* find_volume(std::string_view name) const;
};

struct DomainFacts {
    std::string name;
    bool active = false;
    std::optional<LabctlMetadata> labctl; ///< present when labctl created it
    unsigned cpus = 0;                    ///< <vcpu> of its definition
    std::uint64_t memory_bytes = 0;       ///< <memory> of its definition
};

struct Inventory {
    std::string uri;
    std::string driver;  ///< "QEMU", "Test"
    std::string version; ///< libvirt version on the libvirt host
    std::vector<NetworkFacts> networks;
    std::vector<PoolFacts> pools;
    std::vector<DomainFacts> domains;

    const NetworkFacts* find_network(std::string_view name) const;
    const PoolFacts* find_pool(std::string_view name) const;
    const DomainFacts* find_domain(std::string_view name) const;
};

/// Connects read-only to `uri` and reads every network, pool (with the volumes of active pools)
/// and domain. Throws Error(preflight) with libvirt's message and a hint when libvirt cannot be
/// reached or answers with an error.
Inventory inspect_libvirt(const std::string& uri);

/// Reads a network's XML (name, forward mode, bridge, IPv4 subnets, DHCP hosts, labctl metadata).
NetworkFacts parse_network_xml(std::string_view xml);
/// Reads a storage pool's XML (name, type, target path, capacity, available).
PoolFacts parse_pool_xml(std::string_view xml);

} // namespace labctl::provision
