#include "lv_objects.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <deque>
#include <fstream>

#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/text.hpp>
#include <labctl/provision/host.hpp>

#include "xml.hpp"

namespace labctl::provision {

using namespace libvirt;

namespace {

void update(virNetworkPtr net, unsigned command, unsigned section, const std::string& xml,
            std::string_view what) {
    // Name and connection are read first: every libvirt call resets the thread's last error.
    const std::string name = virNetworkGetName(net);
    virConnectPtr conn = virNetworkGetConnect(net);
    unsigned flags = VIR_NETWORK_UPDATE_AFFECT_CONFIG;
    if (virNetworkIsActive(net) == 1)
        flags |= VIR_NETWORK_UPDATE_AFFECT_LIVE;
    if (virNetworkUpdate(net, command, section, -1, xml.c_str(), flags) != 0)
        throw_operation_error(conn, fmt::format("{} in network '{}'", what, name));
}

std::string dhcp_xml(const DhcpHost& h) {
    std::string s = fmt::format("<host mac='{}'", xml_escape(h.mac));
    if (!h.name.empty())
        s += fmt::format(" name='{}'", xml_escape(h.name));
    if (!h.ip.empty())
        s += fmt::format(" ip='{}'", xml_escape(h.ip));
    return s + "/>";
}

std::string dns_xml(const DnsHostFacts& h) {
    std::string s = fmt::format("<host ip='{}'>", xml_escape(h.ip));
    for (const auto& n : h.hostnames)
        s += fmt::format("<hostname>{}</hostname>", xml_escape(n));
    return s + "</host>";
}

} // namespace

LibvirtSession::LibvirtSession(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
LibvirtSession::LibvirtSession(LibvirtSession&&) noexcept = default;
LibvirtSession& LibvirtSession::operator=(LibvirtSession&&) noexcept = default;
LibvirtSession::~LibvirtSession() = default;

LibvirtSession LibvirtSession::open(const std::string& uri) {
    return LibvirtSession(
        std::make_unique<Impl>(Impl{Connection::open(uri, Connection::Access::read_write)}));
}

const std::string& LibvirtSession::uri() const {
    return m_impl->conn.uri();
}

std::string LibvirtSession::driver() const {
    return m_impl->conn.driver();
}

Inventory LibvirtSession::inventory() const {
    return inspect_connection(m_impl->conn);
}

std::string resolve_domain_type(const config::LabSpec& spec, const Connection& conn,
                                bool test_driver) {
    const std::string& t = spec.libvirt.domain_type;
    if (t != "auto")
        return t;
    // On a local libvirt a guest must really run under KVM: libvirt's capabilities (and
    // /dev/kvm, and KVM_CREATE_VM) all say yes on hosts where KVM guests hang (DESIGN §6).
    // The test driver runs no guests: there libvirt's answer is all there is.
    if (!test_driver && is_local_libvirt_uri(spec.libvirt.uri)) {
        const KvmProbe& probe = cached_kvm_probe();
        if (!probe.usable) {
            log::info("domain_type auto: KVM is not usable here ({}); using qemu (TCG "
                      "emulation, slow)",
                      probe.detail);
            return "qemu";
        }
        log::debug("domain_type auto: {}", probe.detail);
    }
    CString caps(virConnectGetDomainCapabilities(conn.get(), nullptr, "x86_64", nullptr, "kvm", 0));
    if (caps) {
        log::debug("domain_type auto: kvm is usable");
        return "kvm";
    }
    log::info("domain_type auto: kvm is not usable here ({}); using qemu (emulation)",
              take_last_error().message);
    return "qemu";
}

void destroy_domain(const Connection& conn, const std::string& name) {
    DomainHandle d = conn.find_domain(name);
    if (!d)
        return;
    if (virDomainIsActive(d.get()) == 1 && virDomainDestroy(d.get()) != 0)
        throw_operation_error(conn.get(), fmt::format("stopping domain '{}'", name));
    // The widest set first; a driver that knows fewer flags (the test driver has no NVRAM)
    // gets the snapshot metadata flag alone, so a domain with snapshots still goes.
    for (const unsigned flags :
         {unsigned{VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
                   VIR_DOMAIN_UNDEFINE_NVRAM},
          unsigned{VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA}}) {
        if (virDomainUndefineFlags(d.get(), flags) == 0)
            return;
        log::debug("undefine with flags {:#x} failed ({})", flags, take_last_error().message);
    }
    if (virDomainUndefine(d.get()) != 0)
        throw_operation_error(conn.get(), fmt::format("undefining domain '{}'", name));
}

void destroy_network(const Connection& conn, const std::string& name) {
    NetworkHandle n = conn.find_network(name);
    if (!n)
        return;
    if (virNetworkIsActive(n.get()) == 1 && virNetworkDestroy(n.get()) != 0)
        throw_operation_error(conn.get(), fmt::format("stopping network '{}'", name));
    if (virNetworkUndefine(n.get()) != 0)
        throw_operation_error(conn.get(), fmt::format("undefining network '{}'", name));
}

bool delete_volume(virStoragePoolPtr pool, const std::string& name) {
    if (pool == nullptr)
        return false;
    StorageVolHandle v = Connection::find_volume(pool, name);
    if (!v)
        return false;
    virConnectPtr conn = virStoragePoolGetConnect(pool); // before: it resets the last error
    if (virStorageVolDelete(v.get(), 0) != 0)
        throw_operation_error(conn, fmt::format("deleting volume '{}'", name));
    return true;
}

std::uint64_t volume_capacity(virStorageVolPtr vol) {
    const std::string name = virStorageVolGetName(vol);
    virConnectPtr conn = virStorageVolGetConnect(vol);
    virStorageVolInfo info{};
    // Read mid-run (the volume exists, the run has begun): a failure is exit 9, like an operation.
    if (virStorageVolGetInfo(vol, &info) != 0)
        throw_operation_error(conn, fmt::format("reading volume '{}'", name));
    return info.capacity;
}

HostEntries read_host_entries(virNetworkPtr net) {
    const std::string name = virNetworkGetName(net);
    virConnectPtr conn = virNetworkGetConnect(net);
    // The persistent definition; the test driver knows only the live one.
    std::string text = take_string(virNetworkGetXMLDesc(net, VIR_NETWORK_XML_INACTIVE));
    if (text.empty()) {
        log::debug("network '{}': no inactive XML ({}), reading the live one", name,
                   take_last_error().message);
        text = take_string(virNetworkGetXMLDesc(net, 0));
    }
    if (text.empty()) // read mid-run (provision, its waits, down): exit 9, like an operation
        throw_operation_error(conn, fmt::format("reading the XML of network '{}'", name));
    const xml::Element root = xml::parse(text);
    HostEntries out;
    // Every <ip>, whatever its family or prefix (parse_network_xml reads valid IPv4 ones only).
    for (const auto* ip : root.children_named("ip"))
        read_dhcp_hosts(*ip, out.dhcp);
    out.dns = read_dns_hosts(root);
    return out;
}

bool remove_host_entries(virNetworkPtr net, const std::string& mac, const std::string& ip,
                         const std::string& name) {
    const HostEntries entries = read_host_entries(net);
    bool removed = false;
    for (const auto& h : entries.dhcp) {
        if (h.mac != mac && (ip.empty() || h.ip != ip))
            continue;
        update(net, VIR_NETWORK_UPDATE_COMMAND_DELETE, VIR_NETWORK_SECTION_IP_DHCP_HOST,
               dhcp_xml(h), fmt::format("removing the DHCP host {}", h.mac));
        removed = true;
    }
    for (const auto& h : entries.dns) {
        const bool same_ip = !ip.empty() && h.ip == ip;
        const bool same_name = h.hostnames == std::vector<std::string>{name};
        if (!same_ip && !same_name)
            continue;
        update(net, VIR_NETWORK_UPDATE_COMMAND_DELETE, VIR_NETWORK_SECTION_DNS_HOST, dns_xml(h),
               fmt::format("removing the DNS host {}", h.ip));
        removed = true;
    }
    return removed;
}

void add_host_entries(virNetworkPtr net, const std::string& mac, const std::string& ip,
                      const std::string& name) {
    update(net, VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, VIR_NETWORK_SECTION_IP_DHCP_HOST,
           dhcp_xml({mac, name, ip}), fmt::format("adding the DHCP host {} -> {}", mac, ip));
    update(net, VIR_NETWORK_UPDATE_COMMAND_ADD_LAST, VIR_NETWORK_SECTION_DNS_HOST,
           dns_xml({ip, {name}}), fmt::format("adding the DNS host {} -> {}", name, ip));
}

DomainUse domain_use(const std::string& text) {
    DomainUse out;
    const xml::Element root = xml::parse(text);
    if (const auto* devices = root.child("devices")) {
        for (const auto* i : devices->children_named("interface"))
            if (const auto* s = i->child("source"); s != nullptr && s->has_attribute("network"))
                out.networks.push_back(s->attribute("network"));
        for (const auto* d : devices->children_named("disk"))
            if (const auto* s = d->child("source"); s != nullptr && s->has_attribute("file"))
                out.files.push_back(s->attribute("file"));
    }
    return out;
}

namespace {

class LibvirtProbe final : public GuestProbe {
public:
    LibvirtProbe(const Connection& conn, std::string domain, std::string network, std::string mac,
                 std::string console_log)
        : m_conn(conn), m_domain(std::move(domain)), m_network(std::move(network)),
          m_mac(std::move(mac)), m_console_log(std::move(console_log)) {}

    bool running() override {
        DomainHandle d = m_conn.find_domain(m_domain);
        return d && virDomainIsActive(d.get()) == 1;
    }

    std::optional<std::string> reserved_ip() override {
        NetworkHandle n = m_conn.find_network(m_network);
        if (!n)
            return std::nullopt;
        for (const auto& h : read_host_entries(n.get()).dhcp)
            if (h.mac == m_mac && !h.ip.empty())
                return h.ip;
        return std::nullopt;
    }

    std::optional<std::string> lease_ip() override {
        NetworkHandle n = m_conn.find_network(m_network);
        if (!n)
            return std::nullopt;
        virNetworkDHCPLeasePtr* leases = nullptr;
        const int count = virNetworkGetDHCPLeases(n.get(), m_mac.c_str(), &leases, 0);
        if (count < 0) {
            log::debug("DHCP leases of '{}': {}", m_network, take_last_error().message);
            return std::nullopt;
        }
        // The MAC can have more than one lease: one left from before its reservation changed
        // lives until dnsmasq replaces it. The reserved address wins; else the first.
        std::vector<std::string> found;
        for (int i = 0; i < count; ++i) {
            if (leases[i]->type == VIR_IP_ADDR_TYPE_IPV4 && leases[i]->ipaddr != nullptr)
                found.emplace_back(leases[i]->ipaddr);
            virNetworkDHCPLeaseFree(leases[i]);
        }
        std::free(leases);
        return pick_lease(found, found.size() > 1 ? reserved_ip() : std::nullopt);
    }

    std::optional<std::string> agent_ip() override {
        DomainHandle d = m_conn.find_domain(m_domain);
        if (!d)
            return std::nullopt;
        virDomainInterfacePtr* ifaces = nullptr;
        const int count = virDomainInterfaceAddresses(d.get(), &ifaces,
                                                      VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT, 0);
        if (count < 0) {
            log::debug("guest agent of '{}': {}", m_domain, take_last_error().message);
            return std::nullopt;
        }
        std::optional<std::string> out;
        for (int i = 0; i < count; ++i) {
            const auto* iface = ifaces[i];
            if (!out && iface->hwaddr != nullptr && lower(iface->hwaddr) == m_mac)
                for (unsigned j = 0; j < iface->naddrs; ++j)
                    if (iface->addrs[j].type == VIR_IP_ADDR_TYPE_IPV4 &&
                        iface->addrs[j].addr != nullptr) {
                        out = iface->addrs[j].addr;
                        break;
                    }
            virDomainInterfaceFree(ifaces[i]);
        }
        std::free(ifaces);
        return out;
    }

    std::vector<std::string> console_tail() override {
        std::ifstream in(m_console_log);
        std::deque<std::string> lines;
        std::string line;
        while (std::getline(in, line)) {
            lines.push_back(line);
            if (lines.size() > 20)
                lines.pop_front();
        }
        return {lines.begin(), lines.end()};
    }

private:
    const Connection& m_conn;
    std::string m_domain, m_network, m_mac, m_console_log;
};

} // namespace

std::unique_ptr<GuestProbe> make_libvirt_probe(const Connection& conn, const std::string& domain,
                                               const std::string& network, const std::string& mac,
                                               const std::string& console_log) {
    return std::make_unique<LibvirtProbe>(conn, domain, network, mac, console_log);
}

} // namespace labctl::provision
