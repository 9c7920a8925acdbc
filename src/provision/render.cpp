// The XML labctl defines (network, volumes, domain), rendered from templates/libvirt.

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>

#include <labctl/config/ipv4.hpp>
#include <labctl/config/loader.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/templates.hpp>
#include <labctl/core/text.hpp>
#include <labctl/core/version.hpp>
#include <labctl/provision/naming.hpp>
#include <labctl/provision/provision.hpp>

#include "provision_parts.hpp"

namespace labctl::provision {

std::string network_xml(const config::LabSpec& spec) {
    const auto net = config::parse_cidr(spec.network.cidr);
    if (!net)
        throw usage_error(
            fmt::format("network.cidr '{}' is not an IPv4 network", spec.network.cidr));
    // DHCP hands out the upper half; reservations (from .10 up) live below it.
    const std::uint32_t size = net->broadcast() - net->address;
    const std::uint32_t start = net->address + std::max<std::uint32_t>((size + 1) / 2, 2);
    return templates::render(templates::load("libvirt/network.xml"),
                             {{"name", xml_escape(spec.network.name)},
                              {"metadata", labctl_metadata_xml({spec.project, {}, {}})},
                              {"domain", xml_escape(spec.network.domain)},
                              {"gateway", config::format_ipv4(net->gateway())},
                              {"netmask", config::format_ipv4(net->netmask())},
                              {"dhcp_start", config::format_ipv4(start)},
                              {"dhcp_end", config::format_ipv4(net->last_host())}});
}

std::string overlay_volume_xml(const config::LabSpec& spec, const config::VmSpec& vm,
                               const std::string& backing_path) {
    return templates::render(templates::load("libvirt/overlay-volume.xml"),
                             {{"name", xml_escape(overlay_volume_name(spec.project, vm.name))},
                              {"capacity", std::to_string(vm.disk_bytes)},
                              {"backing_path", xml_escape(backing_path)},
                              {"backing_format", xml_escape(spec.image.format)}});
}

std::string seed_volume_xml(const config::LabSpec& spec, const config::VmSpec& vm,
                            std::uint64_t bytes) {
    return templates::render(templates::load("libvirt/seed-volume.xml"),
                             {{"name", xml_escape(seed_volume_name(spec.project, vm.name))},
                              {"capacity", std::to_string(bytes)}});
}

std::string console_log_path(const std::string& uri, const std::string& domain) {
    if (uri.find("/session") != std::string::npos) {
        const char* cache = std::getenv("XDG_CACHE_HOME");
        const char* home = std::getenv("HOME");
        const std::string base = cache != nullptr && *cache != '\0'
                                     ? std::string(cache)
                                     : fmt::format("{}/.cache", home != nullptr ? home : "/tmp");
        return fmt::format("{}/libvirt/qemu/log/{}-console.log", base, domain);
    }
    return fmt::format("/var/log/libvirt/qemu/{}-console.log", domain);
}

std::string slirp_netdev(const config::VmSpec& vm) {
    // restrict=on: the guest reaches nothing, not even this host; only the hostfwd ports lead in,
    // and only from 127.0.0.1.
    std::string out = "user,id=lab0,restrict=on";
    for (const auto& f : vm.forwards)
        out += fmt::format(",hostfwd=tcp:127.0.0.1:{}-:{}", f.host, f.guest);
    return out;
}

std::string domain_metadata_xml(const config::LabSpec& spec, const config::VmSpec& vm,
                                bool declare_namespace) {
    std::string metadata =
        labctl_metadata_xml({spec.project, vm.name, vm_spec_hash(spec, vm),
                             static_cast<unsigned>(vm.cpus), vm.memory_bytes, vm.disk_bytes},
                            declare_namespace);
    // The labctl version rides along (informational; not compared).
    const std::string p = declare_namespace ? fmt::format("{}:", k_metadata_prefix) : "";
    metadata.insert(metadata.rfind("</"),
                    fmt::format("<{0}version>{1}</{0}version>", p, xml_escape(version())));
    return metadata;
}

std::string domain_xml(const config::LabSpec& spec, const config::VmSpec& vm,
                       const std::string& domain_type, const std::string& disk_path,
                       const std::string& seed_path, const BootPaths& boot) {
    const std::string name = domain_name(spec.project, vm.name);
    const std::string mac = deterministic_mac(spec.project, vm.name);
    const std::string metadata = domain_metadata_xml(spec, vm);

    std::string kernel_boot;
    if (!boot.kernel.empty())
        kernel_boot = fmt::format("\n    <kernel>{}</kernel>\n    <initrd>{}</initrd>\n    "
                                  "<cmdline>{}</cmdline>",
                                  xml_escape(boot.kernel), xml_escape(boot.initrd),
                                  xml_escape(spec.image.cmdline.empty()
                                                 ? std::string(config::k_default_cmdline)
                                                 : spec.image.cmdline));
    std::string interface;
    std::string qemu_commandline;
    if (spec.user_network()) {
        // No libvirt network: SLIRP through QEMU's own arguments. Debian 12's libvirt 9.0 rejects
        // the passt backend, and <interface type='user'> cannot restrict the guest or bind the
        // forwards to 127.0.0.1. Slot 0x10: slot 2 collides with the balloon (DESIGN §6).
        qemu_commandline = fmt::format(
            "\n  <qemu:commandline>\n    <qemu:arg value='-netdev'/>\n"
            "    <qemu:arg value='{}'/>\n    <qemu:arg value='-device'/>\n"
            "    <qemu:arg value='virtio-net-pci,netdev=lab0,mac={},bus=pci.0,addr=0x10'/>\n"
            "  </qemu:commandline>",
            xml_escape(slirp_netdev(vm)), mac);
    } else {
        interface = fmt::format("    <interface type='network'>\n      <mac address='{}'/>\n"
                                "      <source network='{}'/>\n      <model type='virtio'/>\n"
                                "    </interface>\n",
                                mac, xml_escape(spec.network.name));
    }
    return templates::render(templates::load("libvirt/domain.xml"),
                             {{"domain_type", domain_type},
                              {"name", xml_escape(name)},
                              {"metadata", metadata},
                              {"memory", std::to_string(vm.memory_bytes)},
                              {"cpus", std::to_string(vm.cpus)},
                              {"kernel_boot", kernel_boot},
                              {"disk_path", xml_escape(disk_path)},
                              {"seed_path", xml_escape(seed_path)},
                              {"console_log", xml_escape(console_log_path(spec.libvirt.uri, name))},
                              {"interface", interface},
                              {"qemu_commandline", qemu_commandline}});
}

} // namespace labctl::provision
