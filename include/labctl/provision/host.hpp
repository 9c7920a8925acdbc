#pragma once
// Facts about this host's virtualisation stack: the libvirt library, /dev/kvm, the routing table
// and free disk space.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <labctl/config/ipv4.hpp>

namespace labctl::provision {

/// The libvirt library version labctl runs with, "9.0.0".
std::string libvirt_library_version();

/// Whether KVM really works here. /dev/kvm opening and KVM_CREATE_VM succeeding prove little: on
/// hosts with broken nested virtualisation Linux guests never finish booting (DESIGN §6). Measured
/// there: a real-mode `hlt` does come back, but a vCPU crawls (a million loop iterations took
/// about a second). So the probe runs a guest and times it: a forked child creates a VM and a
/// vCPU, maps one page holding a real-mode loop of k_kvm_probe_loops iterations ending in `hlt`,
/// and calls KVM_RUN, which must come back with KVM_EXIT_HLT within k_kvm_probe_budget. A child
/// that overruns `deadline` is killed: the probe itself never hangs.
struct KvmProbe {
    bool usable = false;
    std::string detail; ///< "... ran 1000000 loop iterations to HLT in 0.8 ms" or why not
    /// /dev/kvm works but its guests do not (hung, crawled or crashed): loading modules or
    /// permissions will not help.
    bool guests_broken = false;
};
inline constexpr std::uint32_t k_kvm_probe_loops = 1'000'000;
inline constexpr std::chrono::milliseconds k_kvm_probe_budget{200};
KvmProbe probe_kvm(const std::string& device = "/dev/kvm",
                   std::chrono::milliseconds deadline = std::chrono::seconds(2));
/// probe_kvm() of /dev/kvm, run once per process; a broken-guests verdict is also kept for the
/// rest of the boot (kvm_verdict_file()), so every provision does not wait out the probe's
/// 500 ms again. doctor always probes afresh.
const KvmProbe& cached_kvm_probe();

/// Where a broken-guests verdict is kept: /run/labctl/kvm-verdict for root, else
/// $XDG_RUNTIME_DIR/labctl/kvm-verdict; "" when there is no such runtime directory. Both are
/// emptied at boot.
std::string kvm_verdict_file();
/// The verdict kept in `file` when it is for this boot and this `device` node (a module reload
/// makes a new node), else `probe()`'s, kept when it says guests are broken (a usable verdict
/// costs milliseconds to find again). A file that cannot be read or written only costs a probe.
KvmProbe kept_kvm_probe(const std::string& device, const std::string& file,
                        const std::function<KvmProbe()>& probe);

/// Why TCP `port` on 127.0.0.1 cannot be bound ("Address already in use"), or nullopt when it is
/// free. Binds and closes at once; used for network.forwards before QEMU binds them.
std::optional<std::string> loopback_port_busy(int port);

/// One IPv4 route of the host's main table.
struct HostRoute {
    std::string interface;
    config::Ipv4Network destination;
    std::string gateway; ///< "" for on-link routes
};

/// Parses the text of /proc/net/route (header line, then one route per line, hex little-endian).
/// Lines that do not parse are skipped.
std::vector<HostRoute> parse_host_routes(std::string_view text);
/// Reads and parses `path`; an unreadable file gives no routes.
std::vector<HostRoute> read_host_routes(const std::string& path = "/proc/net/route");

/// Free bytes for an unprivileged user on the file system that holds `path`, or that would hold
/// it (the nearest existing ancestor is measured); nullopt when nothing can be measured.
std::optional<std::uint64_t> free_bytes(const std::string& path);

/// True for a libvirt URI without a remote host part (qemu:///system, test:///default).
bool is_local_libvirt_uri(std::string_view uri);

} // namespace labctl::provision
