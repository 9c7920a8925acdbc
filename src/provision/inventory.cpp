#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include <labctl/core/log.hpp>
#include <labctl/core/text.hpp>
#include <labctl/provision/inventory.hpp>

#include "libvirt.hpp"
#include "lv_objects.hpp"
#include "xml.hpp"

namespace labctl::provision {

namespace {

template <typename T>
const T* find_named(const std::vector<T>& items, std::string_view name) {
    const auto it =
        std::find_if(items.begin(), items.end(), [&](const T& t) { return t.name == name; });
    return it == items.end() ? nullptr : &*it;
}

std::uint64_t scaled_bytes(const xml::Element* e) {
    if (e == nullptr)
        return 0;
    std::uint64_t v = 0;
    try {
        v = std::stoull(e->text);
    } catch (const std::exception&) {
        return 0;
    }
    const std::string unit = lower(e->attribute("unit"));
    int shift = 0;
    if (unit == "k" || unit == "kib")
        shift = 10;
    else if (unit == "m" || unit == "mib")
        shift = 20;
    else if (unit == "g" || unit == "gib")
        shift = 30;
    else if (unit == "t" || unit == "tib")
        shift = 40;
    return v << shift;
}

} // namespace

std::string NetworkFacts::subnets_text() const {
    if (subnets.empty())
        return "no IPv4 address";
    std::string s;
    for (const auto& n : subnets)
        s += (s.empty() ? "" : ", ") + n.to_string();
    return s;
}

const VolumeFacts* PoolFacts::find_volume(std::string_view volume) const {
    return find_named(volumes, volume);
}

const NetworkFacts* Inventory::find_network(std::string_view n) const {
    return find_named(networks, n);
}
const PoolFacts* Inventory::find_pool(std::string_view n) const {
    return find_named(pools, n);
}
const DomainFacts* Inventory::find_domain(std::string_view n) const {
    return find_named(domains, n);
}

void read_dhcp_hosts(const xml::Element& ip, std::vector<DhcpHost>& out) {
    if (const auto* dhcp = ip.child("dhcp"))
        for (const auto* host : dhcp->children_named("host"))
            out.push_back(
                {lower(host->attribute("mac")), host->attribute("name"), host->attribute("ip")});
}

std::vector<DnsHostFacts> read_dns_hosts(const xml::Element& network) {
    std::vector<DnsHostFacts> out;
    if (const auto* dns = network.child("dns"))
        for (const auto* host : dns->children_named("host")) {
            DnsHostFacts h{host->attribute("ip"), {}};
            for (const auto* name : host->children_named("hostname"))
                h.hostnames.push_back(name->text);
            out.push_back(std::move(h));
        }
    return out;
}

NetworkFacts parse_network_xml(std::string_view text) {
    const xml::Element root = xml::parse(text);
    NetworkFacts n;
    n.name = root.child_text("name");
    if (const auto* fwd = root.child("forward"))
        n.forward_mode = fwd->attribute("mode").empty() ? "nat" : fwd->attribute("mode");
    if (const auto* br = root.child("bridge"))
        n.bridge = br->attribute("name");
    for (const auto* ip : root.children_named("ip")) {
        const std::string family = ip->attribute("family");
        if (!family.empty() && family != "ipv4")
            continue;
        const auto address = config::parse_ipv4(ip->attribute("address"));
        if (!address)
            continue;
        int prefix = -1;
        if (const auto mask = config::parse_ipv4(ip->attribute("netmask"))) {
            prefix = 0;
            while (prefix < 32 && (*mask & (0x80000000U >> prefix)) != 0)
                ++prefix;
        } else if (ip->has_attribute("prefix")) {
            try {
                prefix = std::stoi(ip->attribute("prefix"));
            } catch (const std::exception&) {
                prefix = -1;
            }
        } else {
            prefix = 24; // libvirt's classful default for a 10/172/192 address is close enough
        }
        if (prefix < 0 || prefix > 32)
            continue;
        const config::Ipv4Network any{0, prefix};
        n.subnets.push_back({*address & any.netmask(), prefix});
        read_dhcp_hosts(*ip, n.dhcp_hosts); // of the IPv4 <ip> elements with a valid prefix only
    }
    n.dns_hosts = read_dns_hosts(root);
    n.labctl = parse_labctl_metadata(text);
    return n;
}

PoolFacts parse_pool_xml(std::string_view text) {
    const xml::Element root = xml::parse(text);
    PoolFacts p;
    p.name = root.child_text("name");
    p.type = root.attribute("type");
    if (const auto* path = root.find("target/path"))
        p.path = path->text;
    p.capacity = scaled_bytes(root.child("capacity"));
    p.available = scaled_bytes(root.child("available"));
    return p;
}

Inventory inspect_libvirt(const std::string& uri) {
    const auto conn = libvirt::Connection::open(uri, libvirt::Connection::Access::read_only);
    return inspect_connection(conn);
}

Inventory inspect_connection(const libvirt::Connection& conn) {
    using namespace libvirt;
    const std::string& uri = conn.uri();
    Inventory inv;
    inv.uri = uri;
    inv.driver = conn.driver();
    inv.version = conn.library_version();

    for (const auto& net : conn.networks()) {
        const char* name = virNetworkGetName(net.get());
        const std::string xml = take_string(virNetworkGetXMLDesc(net.get(), 0));
        if (xml.empty())
            throw_last_error(fmt::format("cannot read the XML of network '{}'", name));
        NetworkFacts facts = parse_network_xml(xml);
        const int active = virNetworkIsActive(net.get());
        if (active < 0)
            throw_last_error(fmt::format("cannot read the state of network '{}'", name));
        facts.active = active == 1;
        inv.networks.push_back(std::move(facts));
    }

    for (const auto& pool : conn.pools()) {
        const char* name = virStoragePoolGetName(pool.get());
        const std::string xml = take_string(virStoragePoolGetXMLDesc(pool.get(), 0));
        if (xml.empty())
            throw_last_error(fmt::format("cannot read the XML of storage pool '{}'", name));
        PoolFacts facts = parse_pool_xml(xml);
        const int active = virStoragePoolIsActive(pool.get());
        if (active < 0)
            throw_last_error(fmt::format("cannot read the state of storage pool '{}'", name));
        facts.active = active == 1;
        if (facts.active) {
            facts.volumes_known = true;
            for (const auto& vol : Connection::volumes(pool.get())) {
                VolumeFacts v;
                v.name = virStorageVolGetName(vol.get());
                v.path = take_string(virStorageVolGetPath(vol.get()));
                virStorageVolInfo info{};
                if (virStorageVolGetInfo(vol.get(), &info) != 0)
                    throw_last_error(
                        fmt::format("cannot read volume '{}' in pool '{}'", v.name, facts.name));
                v.capacity = info.capacity;
                facts.volumes.push_back(std::move(v));
            }
        }
        inv.pools.push_back(std::move(facts));
    }

    for (const auto& dom : conn.domains()) {
        DomainFacts facts;
        facts.name = virDomainGetName(dom.get());
        const std::string xml = take_string(virDomainGetXMLDesc(dom.get(), 0));
        if (xml.empty())
            throw_last_error(fmt::format("cannot read the XML of domain '{}'", facts.name));
        facts.labctl = parse_labctl_metadata(xml);
        const xml::Element root = xml::parse(xml);
        if (const xml::Element* vcpu = root.child("vcpu"))
            facts.cpus = static_cast<unsigned>(parse_u64(vcpu->text).value_or(0));
        facts.memory_bytes = scaled_bytes(root.child("memory"));
        const int active = virDomainIsActive(dom.get());
        if (active < 0)
            throw_last_error(fmt::format("cannot read the state of domain '{}'", facts.name));
        facts.active = active == 1;
        inv.domains.push_back(std::move(facts));
    }
    log::debug("libvirt at {} ({} {}): {} networks, {} pools, {} domains", uri, inv.driver,
               inv.version, inv.networks.size(), inv.pools.size(), inv.domains.size());
    return inv;
}

} // namespace labctl::provision
