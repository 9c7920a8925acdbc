#include <fmt/format.h>

#include <labctl/config/loader.hpp>
#include <labctl/provision/naming.hpp>
#include <labctl/provision/vm_change.hpp>

namespace labctl::provision {

bool VmDiff::redefines() const {
    return from.cpus != to.cpus || from.memory_bytes != to.memory_bytes;
}

std::string VmDiff::cpus_memory_text() const {
    std::string out;
    if (from.cpus != to.cpus)
        out = fmt::format("{} -> {} vCPU", from.cpus, to.cpus);
    if (from.memory_bytes != to.memory_bytes)
        out += fmt::format("{}{} -> {} memory", out.empty() ? "" : ", ",
                           config::format_size(from.memory_bytes),
                           config::format_size(to.memory_bytes));
    return out;
}

VmSizes domain_sizes(const DomainFacts& domain, std::uint64_t disk_capacity) {
    VmSizes s{domain.cpus, domain.memory_bytes, disk_capacity};
    if (domain.labctl) {
        if (domain.labctl->cpus > 0)
            s.cpus = domain.labctl->cpus;
        if (domain.labctl->memory_bytes > 0)
            s.memory_bytes = domain.labctl->memory_bytes;
        if (domain.labctl->disk_bytes > 0)
            s.disk_bytes = domain.labctl->disk_bytes;
    }
    return s;
}

config::VmSpec with_sizes(const config::VmSpec& vm, const VmSizes& sizes) {
    config::VmSpec out = vm;
    out.cpus = static_cast<int>(sizes.cpus);
    out.memory_bytes = sizes.memory_bytes;
    out.disk_bytes = sizes.disk_bytes;
    return out;
}

VmDiff compare_vm(const config::LabSpec& spec, const config::VmSpec& vm, const DomainFacts& domain,
                  std::uint64_t disk_capacity) {
    VmDiff d;
    d.to = {static_cast<unsigned>(vm.cpus), vm.memory_bytes, vm.disk_bytes};
    d.from = domain_sizes(domain, disk_capacity);
    if (!domain.labctl) {
        d.change = VmChange::replace;
        return d;
    }
    const std::string& stored = domain.labctl->spec_hash;
    if (stored == vm_spec_hash(spec, vm)) {
        d.from = d.to;
        return d;
    }
    d.change =
        stored == vm_spec_hash(spec, with_sizes(vm, d.from)) ? VmChange::resize : VmChange::replace;
    return d;
}

VmDiff compare_vm(const config::LabSpec& spec, const config::VmSpec& vm, const Inventory& inv) {
    const DomainFacts* d = inv.find_domain(domain_name(spec.project, vm.name));
    if (d == nullptr || !d->labctl) {
        const VmSizes sizes{static_cast<unsigned>(vm.cpus), vm.memory_bytes, vm.disk_bytes};
        return {VmChange::none, sizes, sizes};
    }
    const PoolFacts* pool = inv.find_pool(spec.libvirt.pool);
    const VolumeFacts* disk =
        pool != nullptr ? pool->find_volume(overlay_volume_name(spec.project, vm.name)) : nullptr;
    return compare_vm(spec, vm, *d, disk != nullptr ? disk->capacity : 0);
}

} // namespace labctl::provision
