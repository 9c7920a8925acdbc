// The lab's shared libvirt objects made by provision (the NAT network, the storage pool) and the
// preflight of network.mode user's forwarded ports.

#include <fmt/format.h>

#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/templates.hpp>
#include <labctl/core/text.hpp>
#include <labctl/provision/host.hpp>
#include <labctl/provision/naming.hpp>

#include "lv_objects.hpp"
#include "provision_parts.hpp"

namespace labctl::provision {

using namespace libvirt;

NetworkHandle create_network(const Connection& conn, const config::LabSpec& spec,
                             Journal& journal) {
    const std::string& name = spec.network.name;
    const std::string xml = network_xml(spec);
    NetworkHandle net(virNetworkDefineXML(conn.get(), xml.c_str()));
    if (!net)
        throw_operation_error(conn.get(), fmt::format("defining network '{}'", name));
    journal.add(fmt::format("network '{}'", name), [&conn, name] { destroy_network(conn, name); });
    if (virNetworkCreate(net.get()) != 0)
        throw_operation_error(conn.get(), fmt::format("starting network '{}'", name));
    if (virNetworkSetAutostart(net.get(), 1) != 0)
        log::debug("network '{}': autostart not set: {}", name, take_last_error().message);
    return net;
}

StoragePoolHandle create_pool(const Connection& conn, const config::LabSpec& spec,
                              Journal& journal) {
    const std::string& name = spec.libvirt.pool;
    const std::string xml = templates::render(
        templates::load("libvirt/pool.xml"),
        {{"name", xml_escape(name)}, {"path", xml_escape(spec.libvirt.pool_path)}});
    StoragePoolHandle p(virStoragePoolDefineXML(conn.get(), xml.c_str(), 0));
    if (!p)
        throw_operation_error(conn.get(), fmt::format("defining storage pool '{}'", name));
    journal.add(fmt::format("storage pool '{}'", name), [&conn, name] {
        if (auto h = conn.find_pool(name)) {
            if (virStoragePoolIsActive(h.get()) == 1)
                virStoragePoolDestroy(h.get());
            if (virStoragePoolUndefine(h.get()) != 0)
                throw_operation_error(conn.get(),
                                      fmt::format("undefining storage pool '{}'", name));
        }
    });
    if (virStoragePoolBuild(p.get(), 0) != 0)
        throw_operation_error(conn.get(), fmt::format("building storage pool '{}' at {}", name,
                                                      spec.libvirt.pool_path));
    if (virStoragePoolCreate(p.get(), 0) != 0)
        throw_operation_error(conn.get(), fmt::format("starting storage pool '{}'", name));
    if (virStoragePoolSetAutostart(p.get(), 1) != 0)
        log::debug("pool '{}': autostart not set: {}", name, take_last_error().message);
    return p;
}

void check_forward_ports(const config::LabSpec& spec, const Inventory& existing) {
    if (!spec.user_network())
        return;
    if (!is_local_libvirt_uri(spec.libvirt.uri)) {
        log::debug("remote libvirt host: its 127.0.0.1 ports are not checked from here");
        return;
    }
    for (const auto& vm : spec.vms) {
        // Ports of a domain that keeps running (or is replaced, which stops it first) are its own.
        const DomainFacts* d = existing.find_domain(domain_name(spec.project, vm.name));
        if (d != nullptr && d->active && d->labctl && d->labctl->project == spec.project)
            continue;
        for (const auto& f : vm.forwards)
            if (const auto why = loopback_port_busy(f.host))
                throw Error(ExitCode::preflight,
                            fmt::format("VM '{}': host port {} (forwarded to guest port {}) is "
                                        "already in use on 127.0.0.1: {}",
                                        vm.name, f.host, f.guest, *why),
                            fmt::format("stop what listens there (ss -ltnp 'sport = :{}'), or "
                                        "change the host port in network.forwards",
                                        f.host));
    }
}

} // namespace labctl::provision
