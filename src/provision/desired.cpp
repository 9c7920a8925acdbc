#include <fmt/format.h>

#include <filesystem>
#include <tuple>

#include <labctl/config/ipv4.hpp>
#include <labctl/config/loader.hpp>
#include <labctl/provision/desired.hpp>
#include <labctl/provision/naming.hpp>

namespace labctl::provision {

std::string_view kind_name(ResourceKind kind) {
    switch (kind) {
    case ResourceKind::network:
        return "network";
    case ResourceKind::pool:
        return "pool";
    case ResourceKind::base_volume:
    case ResourceKind::boot_volume:
    case ResourceKind::overlay_volume:
    case ResourceKind::seed_volume:
        return "volume";
    case ResourceKind::dhcp_host:
        return "dhcp-host";
    case ResourceKind::domain:
        return "domain";
    }
    return "?";
}

namespace {

std::string user_detail(const config::LabSpec& spec, const config::VmSpec& vm) {
    const auto ssh = spec.ssh_address(vm);
    return fmt::format("user network (SLIRP), ssh {}:{}", ssh.host, ssh.port);
}

} // namespace

std::vector<DesiredResource> desired_resources(const config::LabSpec& spec) {
    std::vector<DesiredResource> out;
    const bool nat = spec.network.mode == "nat";
    if (nat) {
        std::string detail = fmt::format("NAT {}", spec.network.cidr);
        if (const auto net = config::parse_cidr(spec.network.cidr))
            detail += fmt::format(", gateway {}", config::format_ipv4(net->gateway()));
        detail += fmt::format(", domain {}", spec.network.domain);
        out.push_back({ResourceKind::network, spec.network.name, detail, {}});
    }

    out.push_back({ResourceKind::pool,
                   spec.libvirt.pool,
                   spec.libvirt.pool_path.empty()
                       ? std::string("storage pool (must exist)")
                       : fmt::format("dir pool at {}", spec.libvirt.pool_path),
                   {}});

    const std::string base = base_volume_name(spec.image);
    if (!base.empty()) {
        const std::string& source = spec.image.path.empty() ? spec.image.url : spec.image.path;
        out.push_back({ResourceKind::base_volume,
                       base,
                       fmt::format("base image ({}) from {}", spec.image.format, source),
                       {}});
    }

    if (spec.image.direct_kernel_boot()) {
        for (const auto& [name, file, what] :
             {std::tuple{kernel_volume_name(spec.project), spec.image.kernel, "kernel"},
              std::tuple{initrd_volume_name(spec.project), spec.image.initrd, "initrd"}}) {
            DesiredResource r{ResourceKind::boot_volume,
                              name,
                              fmt::format("{} for direct kernel boot from {}", what, file),
                              {}};
            std::error_code ec;
            const auto size = std::filesystem::file_size(file, ec);
            r.bytes = ec ? 0 : static_cast<std::uint64_t>(size);
            r.source = file;
            out.push_back(std::move(r));
        }
    }

    for (const auto& vm : spec.vms) {
        const std::string mac = deterministic_mac(spec.project, vm.name);
        if (nat) {
            DesiredResource r{ResourceKind::dhcp_host, vm.name,
                              fmt::format("{} -> {} in {}", mac, vm.ip, spec.network.name),
                              vm.name};
            r.mac = mac;
            r.ip = vm.ip;
            out.push_back(std::move(r));
        }
        DesiredResource disk{
            ResourceKind::overlay_volume, overlay_volume_name(spec.project, vm.name),
            base.empty()
                ? fmt::format("qcow2 disk, {}", config::format_size(vm.disk_bytes))
                : fmt::format("qcow2 overlay of {}, {}", base, config::format_size(vm.disk_bytes)),
            vm.name};
        disk.bytes = vm.disk_bytes;
        out.push_back(std::move(disk));
        out.push_back({ResourceKind::seed_volume, seed_volume_name(spec.project, vm.name),
                       "cloud-init NoCloud seed", vm.name});
        const std::string hash = vm_spec_hash(spec, vm);
        DesiredResource dom{ResourceKind::domain, domain_name(spec.project, vm.name),
                            fmt::format("{} vCPU, {} RAM, {}, spec {}", vm.cpus,
                                        config::format_size(vm.memory_bytes),
                                        nat ? fmt::format("{} on {}", vm.ip, spec.network.name)
                                            : user_detail(spec, vm),
                                        hash.substr(0, 12)),
                            vm.name};
        dom.mac = mac;
        dom.ip = vm.ip;
        dom.spec_hash = hash;
        out.push_back(std::move(dom));
    }
    return out;
}

} // namespace labctl::provision
