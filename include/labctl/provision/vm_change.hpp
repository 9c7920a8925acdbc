#pragma once
// How an existing VM differs from lab.yaml: not at all, only in its sizes (cpus, memory, disk:
// updated in place, its disk and data kept), or in anything else (replaced: new domain, seed and
// disk, its data lost). Pure, so plan, provision and status agree and tests need no libvirt.

#include <cstdint>
#include <optional>
#include <string>

#include <labctl/config/lab_spec.hpp>
#include <labctl/provision/inventory.hpp>

namespace labctl::provision {

struct VmSizes {
    unsigned cpus = 0;
    std::uint64_t memory_bytes = 0;
    std::uint64_t disk_bytes = 0;
};

enum class VmChange { none, resize, replace };

struct VmDiff {
    VmChange change = VmChange::none;
    VmSizes from; ///< the sizes the domain was made with
    VmSizes to;   ///< lab.yaml's

    /// cpus or memory differ: the domain is redefined and (when running) restarted.
    bool redefines() const;
    /// "2 -> 3 vCPU, 3 GiB -> 4 GiB memory" (only what differs; "" when neither does).
    std::string cpus_memory_text() const;
};

/// The sizes a domain was made with: those its metadata records; for a domain made before labctl
/// recorded them, its definition's vcpu and memory and its disk's capacity (`disk_capacity`, 0
/// when unknown).
VmSizes domain_sizes(const DomainFacts& domain, std::uint64_t disk_capacity);

/// `vm` with other sizes (for the hash it had when made with them).
config::VmSpec with_sizes(const config::VmSpec& vm, const VmSizes& sizes);

/// Compares a labctl domain (its metadata's spec hash) with `vm` of `spec`: none when the hashes
/// match; resize when they match once `vm` is given the domain's sizes; replace otherwise (and
/// for a domain without labctl metadata).
VmDiff compare_vm(const config::LabSpec& spec, const config::VmSpec& vm, const DomainFacts& domain,
                  std::uint64_t disk_capacity);

/// compare_vm for the VM's domain and disk as `inv` found them; none (from = to = lab.yaml's
/// sizes) when there is no domain labctl made.
VmDiff compare_vm(const config::LabSpec& spec, const config::VmSpec& vm, const Inventory& inv);

} // namespace labctl::provision
