#include <fmt/format.h>

#include <labctl/provision/network.hpp>

namespace labctl::provision {

bool overlaps(const config::Ipv4Network& a, const config::Ipv4Network& b) {
    return a.contains(b.address) || b.contains(a.address);
}

std::string NetworkCollision::describe() const {
    if (source == Source::libvirt_network)
        return fmt::format("libvirt network '{}' ({})", name, range.to_string());
    return fmt::format("host route {} on {}", range.to_string(), name);
}

std::vector<NetworkCollision> network_collisions(const config::LabSpec& spec,
                                                 const Inventory& existing,
                                                 const std::vector<HostRoute>& routes) {
    std::vector<NetworkCollision> out;
    if (spec.network.mode != "nat")
        return out;
    const auto wanted = config::parse_cidr(spec.network.cidr);
    if (!wanted)
        return out;
    std::string own_bridge;
    for (const auto& net : existing.networks) {
        if (net.name == spec.network.name) {
            own_bridge = net.bridge;
            continue;
        }
        for (const auto& subnet : net.subnets)
            if (overlaps(*wanted, subnet))
                out.push_back({NetworkCollision::Source::libvirt_network, net.name, subnet});
    }
    for (const auto& route : routes) {
        if (route.destination.prefix == 0)
            continue; // the default route overlaps everything and hides nothing
        if (!own_bridge.empty() && route.interface == own_bridge)
            continue; // the lab network's own route, while it is active
        if (overlaps(*wanted, route.destination))
            out.push_back(
                {NetworkCollision::Source::host_route, route.interface, route.destination});
    }
    return out;
}

std::string describe_collisions(const config::LabSpec& spec,
                                const std::vector<NetworkCollision>& collisions) {
    std::string list;
    for (const auto& c : collisions)
        list += (list.empty() ? "" : ", ") + c.describe();
    return fmt::format("network.cidr {} collides with {}", spec.network.cidr, list);
}

} // namespace labctl::provision
