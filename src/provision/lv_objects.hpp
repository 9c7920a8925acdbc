#pragma once
// Private to src/provision: operations on libvirt objects shared by provision, status and down.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <labctl/provision/inventory.hpp>
#include <labctl/provision/provision.hpp>
#include <labctl/provision/wait.hpp>

#include "libvirt.hpp"
#include "xml.hpp"

namespace labctl::provision {

struct LibvirtSession::Impl {
    libvirt::Connection conn;
};

using StreamHandle = libvirt::CHandle<virStream, virStreamFree>;

/// inspect_libvirt over an open connection.
Inventory inspect_connection(const libvirt::Connection& conn);

/// libvirt.domain_type, with "auto" resolved: on a local libvirt kvm only when probe_kvm ran a real
/// guest loop, else libvirt's domain capabilities decide (the test driver runs no guests).
std::string resolve_domain_type(const config::LabSpec& spec, const libvirt::Connection& conn,
                                bool test_driver);

/// Stops (if running) and undefines the domain; nothing when it does not exist.
void destroy_domain(const libvirt::Connection& conn, const std::string& name);
/// Stops (if running) and undefines the network; nothing when it does not exist.
void destroy_network(const libvirt::Connection& conn, const std::string& name);
/// Deletes the volume from the pool; false when it did not exist.
bool delete_volume(virStoragePoolPtr pool, const std::string& name);
std::uint64_t volume_capacity(virStorageVolPtr vol);

/// The <host> entries of a network <ip> element's <dhcp>, appended to `out` (MACs lower-cased).
void read_dhcp_hosts(const xml::Element& ip, std::vector<DhcpHost>& out);
/// The <dns><host> entries of a network's XML (`network` is its root), in document order.
std::vector<DnsHostFacts> read_dns_hosts(const xml::Element& network);

struct HostEntries {
    std::vector<DhcpHost> dhcp;
    std::vector<DnsHostFacts> dns;
};

/// The network's DHCP host reservations and DNS host entries (its persistent definition).
HostEntries read_host_entries(virNetworkPtr net);

/// Removes DHCP hosts with this MAC, or with this IP, and DNS hosts with this IP or whose only
/// name is `name` (live + config). `ip` may be empty. True when anything was removed.
bool remove_host_entries(virNetworkPtr net, const std::string& mac, const std::string& ip,
                         const std::string& name);
/// Adds the DHCP reservation and the DNS host (live + config).
void add_host_entries(virNetworkPtr net, const std::string& mac, const std::string& ip,
                      const std::string& name);

/// The GuestProbe of a libvirt domain: state, reservation and DHCP lease in `network` for `mac`,
/// guest agent addresses, and the tail of the serial console log when it is readable here.
std::unique_ptr<GuestProbe> make_libvirt_probe(const libvirt::Connection& conn,
                                               const std::string& domain,
                                               const std::string& network, const std::string& mac,
                                               const std::string& console_log);

/// The source network names of the domain's interfaces and its disks' source files.
struct DomainUse {
    std::vector<std::string> networks;
    std::vector<std::string> files;
};
DomainUse domain_use(const std::string& domain_xml);

} // namespace labctl::provision
