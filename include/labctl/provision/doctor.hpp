#pragma once
// doctor: is this host ready for a lab? Each check is data (a failed check is a result, not an
// exception); `labctl doctor` prints them and exits 3 when a required one failed.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <labctl/config/lab_spec.hpp>
#include <labctl/provision/host.hpp>
#include <labctl/provision/inventory.hpp>

namespace labctl::provision {

enum class CheckStatus { ok, warn, fail, skip };

/// "ok", "warn", "fail", "skip"
std::string_view status_name(CheckStatus status);

struct DoctorCheck {
    std::string name; ///< "kvm", "libvirt.uri", "tools.rsync", ...
    CheckStatus status = CheckStatus::ok;
    bool required = true; ///< a failed required check makes doctor exit 3
    std::string detail;
    std::string hint; ///< what to do about a warn or fail
    std::string host; ///< the lab host it is about, in a lab of several; "" otherwise
};

/// Whether a check is about one libvirt host (kvm, libvirt.*, network.*, ssh.jump, disk.pool):
/// a lab of several hosts runs those once per host, the others once.
bool is_host_check(const std::string& name);

struct DoctorReport {
    std::string uri;
    bool have_spec = false;
    std::vector<DoctorCheck> checks;

    /// Names of the required checks that failed.
    std::vector<std::string> failed_required() const;
    std::size_t count(CheckStatus status) const;
};

struct DoctorOptions {
    /// The libvirt URI to check when there is no spec (with a spec, spec.libvirt.uri is used).
    std::string uri = "qemu:///system";
    std::string kvm_device = "/dev/kvm";
    std::string route_table = "/proc/net/route";
};

/// Runs every check. Without a spec the lab-specific checks (pool, network, ssh key, disk) are
/// reported as skipped.
DoctorReport run_doctor(const std::optional<config::LabSpec>& spec,
                        const DoctorOptions& options = {});

// The single checks, for tests and reuse.

/// kvm: fail when not usable and domain_type is "kvm"; otherwise a warning (TCG fallback).
DoctorCheck check_kvm(const KvmProbe& probe, const std::string& domain_type);
/// network.forwards (mode user): every forward's host port is free on 127.0.0.1, or held by the
/// lab's own running VM. Skipped for a remote libvirt host.
DoctorCheck check_forwards(const config::LabSpec& spec, const Inventory* inventory, bool local);
/// tools.<program>: the program is on PATH.
DoctorCheck check_tool(const std::string& program, const std::string& package);
/// ssh.key: warn when missing (labctl init), fail when group or others can read it.
DoctorCheck check_ssh_key(const std::string& private_key);
/// disk.<where>: fail below k_min_free_bytes, warn below `wanted` (the lab's disks at full size).
DoctorCheck check_free_space(const std::string& name, const std::string& where,
                             std::optional<std::uint64_t> free, std::uint64_t wanted);

inline constexpr std::uint64_t k_min_free_bytes = 5ULL << 30;

} // namespace labctl::provision
