#pragma once
// Whether the lab's network range is free on this host: no other libvirt network and no host
// route may overlap it. Shared by `plan` (which refuses) and `doctor` (which reports).

#include <string>
#include <vector>

#include <labctl/config/lab_spec.hpp>
#include <labctl/provision/host.hpp>
#include <labctl/provision/inventory.hpp>

namespace labctl::provision {

struct NetworkCollision {
    enum class Source { libvirt_network, host_route };
    Source source;
    std::string name; ///< the other network's name, or the route's interface
    config::Ipv4Network range;

    /// "libvirt network 'other' (10.66.0.0/16)" / "host route 10.66.77.0/24 via eth1"
    std::string describe() const;
};

/// Everything that overlaps spec.network.cidr: other libvirt networks (the lab's own network, by
/// name, does not count) and host routes (the default route and routes through the lab network's
/// own bridge do not count). Empty when network.mode is not nat or the CIDR does not parse.
/// Pass no routes for a remote libvirt host: this host's routes say nothing about it.
std::vector<NetworkCollision> network_collisions(const config::LabSpec& spec,
                                                 const Inventory& existing,
                                                 const std::vector<HostRoute>& routes);

/// "network.cidr 10.66.77.0/24 collides with libvirt network 'other' (10.66.0.0/16)" (all of them).
std::string describe_collisions(const config::LabSpec& spec,
                                const std::vector<NetworkCollision>& collisions);

/// Two IPv4 ranges share an address.
bool overlaps(const config::Ipv4Network& a, const config::Ipv4Network& b);

} // namespace labctl::provision
