#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/kvm.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <labctl/core/file.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/text.hpp>
#include <labctl/provision/host.hpp>

#include "libvirt.hpp"

namespace labctl::provision {

namespace {

class Fd {
public:
    explicit Fd(int fd) : m_fd(fd) {}
    ~Fd() {
        if (m_fd >= 0)
            ::close(m_fd);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    Fd& operator=(Fd&& other) noexcept {
        if (this != &other) {
            if (m_fd >= 0)
                ::close(m_fd);
            m_fd = other.m_fd;
            other.m_fd = -1;
        }
        return *this;
    }
    int get() const { return m_fd; }
    /// Closes now (the probe's parent must drop its write end so a dead child means EOF).
    void close() {
        if (m_fd >= 0)
            ::close(m_fd);
        m_fd = -1;
    }

private:
    int m_fd;
};

std::optional<std::uint32_t> parse_hex_le(const std::string& field) {
    if (field.size() != 8)
        return std::nullopt;
    try {
        std::size_t used = 0;
        const unsigned long v = std::stoul(field, &used, 16);
        if (used != field.size())
            return std::nullopt;
        // /proc/net/route prints the address in host (little-endian) byte order.
        const auto le = static_cast<std::uint32_t>(v);
        return ((le & 0xFFU) << 24) | ((le & 0xFF00U) << 8) | ((le >> 8) & 0xFF00U) | (le >> 24);
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

int prefix_of(std::uint32_t mask) {
    int prefix = 0;
    while (prefix < 32 && (mask & (0x80000000U >> prefix)) != 0)
        ++prefix;
    return prefix;
}

} // namespace

namespace {

/// What the probe's child reports through its pipe: the step that failed (0: none), errno and
/// the vCPU's exit reason. Plain data, because the child of a possibly multi-threaded labctl may
/// only make async-signal-safe calls (no allocation, no formatting).
struct ProbeReport {
    int step = 0;
    int error = 0;
    int exit_reason = -1;
    std::int64_t run_ns = 0; ///< how long KVM_RUN took (clock_gettime is async-signal-safe)
};

/// The test guest, loaded at k_guest_address and entered in real mode with ecx = k_loop_count:
///   dec ecx ; jnz (back to dec) ; hlt
/// A million trivial iterations take milliseconds on a working CPU. Measured on a host where KVM
/// guests "hang" (DESIGN §6): 0.9 to 1.5 s, and a Linux kernel under KVM there never got past its
/// decompressor in 40 s (under TCG it reached its first panic in 2.4 s).
constexpr unsigned char k_guest_code[] = {0x66, 0x49, 0x75, 0xfc, 0xf4};
constexpr std::uint64_t k_guest_address = 0x1000;

enum ProbeStep : int {
    k_ok = 0,
    k_create_vm,
    k_memory,
    k_set_memory,
    k_create_vcpu,
    k_mmap_size,
    k_mmap_run,
    k_get_sregs,
    k_set_sregs,
    k_set_regs,
    k_run,
    k_not_hlt,
};

const char* step_name(int step) {
    switch (step) {
    case k_create_vm:
        return "KVM_CREATE_VM";
    case k_memory:
        return "allocating guest memory";
    case k_set_memory:
        return "KVM_SET_USER_MEMORY_REGION";
    case k_create_vcpu:
        return "KVM_CREATE_VCPU";
    case k_mmap_size:
        return "KVM_GET_VCPU_MMAP_SIZE";
    case k_mmap_run:
        return "mapping the vCPU's kvm_run";
    case k_get_sregs:
        return "KVM_GET_SREGS";
    case k_set_sregs:
        return "KVM_SET_SREGS";
    case k_set_regs:
        return "KVM_SET_REGS";
    case k_run:
        return "KVM_RUN";
    default:
        return "?";
    }
}

[[noreturn]] void report_and_exit(int out, ProbeReport r, int step, int error) {
    r.step = step;
    r.error = error;
    [[maybe_unused]] const auto n = ::write(out, &r, sizeof r);
    ::_exit(step == k_ok ? 0 : 1);
}

/// The child's whole life: async-signal-safe system calls only, then _exit.
[[noreturn]] void run_probe_guest(int kvm, int out) {
    ProbeReport r;
    const auto finish = [&](int step, int error) {
        report_and_exit(out, r, step, error);
    };
    const int vm = ::ioctl(kvm, KVM_CREATE_VM, 0UL);
    if (vm < 0)
        finish(k_create_vm, errno);
    // Intel without unrestricted guest needs a TSS for real mode; harmless elsewhere.
    ::ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000UL);
    void* mem = ::mmap(nullptr, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        finish(k_memory, errno);
    for (std::size_t i = 0; i < sizeof k_guest_code; ++i)
        static_cast<unsigned char*>(mem)[i] = k_guest_code[i];
    kvm_userspace_memory_region region{};
    region.slot = 0;
    region.guest_phys_addr = k_guest_address;
    region.memory_size = 0x1000;
    region.userspace_addr = reinterpret_cast<std::uint64_t>(mem);
    if (::ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
        finish(k_set_memory, errno);
    const int vcpu = ::ioctl(vm, KVM_CREATE_VCPU, 0UL);
    if (vcpu < 0)
        finish(k_create_vcpu, errno);
    const int run_size = ::ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size <= 0)
        finish(k_mmap_size, errno);
    void* run_mem = ::mmap(nullptr, static_cast<std::size_t>(run_size), PROT_READ | PROT_WRITE,
                           MAP_SHARED, vcpu, 0);
    if (run_mem == MAP_FAILED)
        finish(k_mmap_run, errno);
    auto* run = static_cast<kvm_run*>(run_mem);
    kvm_sregs sregs{};
    if (::ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
        finish(k_get_sregs, errno);
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    if (::ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
        finish(k_set_sregs, errno);
    kvm_regs regs{};
    regs.rip = k_guest_address;
    regs.rflags = 0x2; // bit 1 is reserved and must be set
    regs.rcx = k_kvm_probe_loops;
    if (::ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
        finish(k_set_regs, errno);
    timespec t0{};
    timespec t1{};
    ::clock_gettime(CLOCK_MONOTONIC, &t0);
    if (::ioctl(vcpu, KVM_RUN, 0) < 0)
        finish(k_run, errno);
    ::clock_gettime(CLOCK_MONOTONIC, &t1);
    r.run_ns = (static_cast<std::int64_t>(t1.tv_sec) - t0.tv_sec) * 1'000'000'000 +
               (t1.tv_nsec - t0.tv_nsec);
    r.exit_reason = static_cast<int>(run->exit_reason);
    report_and_exit(out, r, run->exit_reason == KVM_EXIT_HLT ? k_ok : k_not_hlt, 0);
}

std::string exit_reason_text(int reason) {
    switch (reason) {
    case KVM_EXIT_FAIL_ENTRY:
        return "KVM_EXIT_FAIL_ENTRY";
    case KVM_EXIT_INTERNAL_ERROR:
        return "KVM_EXIT_INTERNAL_ERROR";
    case KVM_EXIT_SHUTDOWN:
        return "KVM_EXIT_SHUTDOWN (triple fault)";
    case KVM_EXIT_MMIO:
        return "KVM_EXIT_MMIO";
    case KVM_EXIT_IO:
        return "KVM_EXIT_IO";
    default:
        return fmt::format("exit reason {}", reason);
    }
}

} // namespace

KvmProbe probe_kvm(const std::string& device, std::chrono::milliseconds deadline) {
    using Clock = std::chrono::steady_clock;
    Fd kvm(::open(device.c_str(), O_RDWR | O_CLOEXEC));
    if (kvm.get() < 0)
        return {false, fmt::format("cannot open {}: {}", device, std::strerror(errno))};
    const int api = ::ioctl(kvm.get(), KVM_GET_API_VERSION, 0);
    if (api < 0)
        return {false,
                fmt::format("KVM_GET_API_VERSION on {} failed: {}", device, std::strerror(errno))};
    if (api != KVM_API_VERSION)
        return {false,
                fmt::format("{} speaks KVM API {}, expected {}", device, api, KVM_API_VERSION)};

    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
        return {false,
                fmt::format("cannot create a pipe for the KVM probe: {}", std::strerror(errno))};
    Fd read_end(fds[0]);
    Fd write_end(fds[1]);
    const auto t0 = Clock::now();
    const pid_t child = ::fork();
    if (child < 0)
        return {false, fmt::format("cannot fork the KVM probe: {}", std::strerror(errno))};
    if (child == 0)
        run_probe_guest(kvm.get(), write_end.get());
    write_end.close();

    ProbeReport report;
    bool got = false;
    pollfd pfd{read_end.get(), POLLIN, 0};
    for (;;) {
        const auto left = deadline - (Clock::now() - t0);
        const int wait_ms = static_cast<int>(std::max<long long>(
            0, std::chrono::duration_cast<std::chrono::milliseconds>(left).count()));
        const int ready = ::poll(&pfd, 1, wait_ms);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready > 0)
            got = ::read(read_end.get(), &report, sizeof report) ==
                  static_cast<ssize_t>(sizeof report);
        break;
    }
    int status = 0;
    if (!got) {
        // Hung (or died without a word): kill it. A vCPU stuck inside the kernel may take a moment
        // to notice the signal; never wait long for it.
        ::kill(child, SIGKILL);
        bool reaped = false;
        for (int i = 0; i < 50 && !reaped; ++i) {
            reaped = ::waitpid(child, &status, WNOHANG) == child;
            if (!reaped)
                ::usleep(10'000);
        }
        const bool died = reaped && !WIFSIGNALED(status) && pfd.revents != 0;
        if (died)
            return {false,
                    fmt::format("the KVM probe exited without a report (status {})", status)};
        return {false,
                fmt::format("a test vCPU on {} did not finish {} loop iterations within {} ms "
                            "(KVM_RUN hung or crawled: broken nested virtualisation?)",
                            device, k_kvm_probe_loops, deadline.count()),
                true};
    }
    ::waitpid(child, &status, 0);
    const auto run_ms = report.run_ns / 1'000'000;
    if (report.step == k_ok && std::chrono::milliseconds(run_ms) <= k_kvm_probe_budget)
        return {true,
                fmt::format("{} usable (KVM API {}; a test vCPU ran {} loop iterations to HLT "
                            "in {:.1f} ms)",
                            device, api, k_kvm_probe_loops,
                            static_cast<double>(report.run_ns) / 1e6)};
    if (report.step == k_ok)
        return {false,
                fmt::format("a test vCPU on {} needed {} ms for {} loop iterations (milliseconds "
                            "with working KVM; over {} ms guests are too slow to boot here: "
                            "nested virtualisation?)",
                            device, run_ms, k_kvm_probe_loops, k_kvm_probe_budget.count()),
                true};
    if (report.step == k_not_hlt)
        return {false,
                fmt::format("a test vCPU on {} stopped with {} instead of HLT", device,
                            exit_reason_text(report.exit_reason)),
                true};
    return {false, fmt::format("{} on {} failed: {}", step_name(report.step), device,
                               std::strerror(report.error))};
}

namespace {

/// This boot and this device node: /proc's boot id, the node's inode and change time.
std::string verdict_key(const std::string& device) {
    struct stat st {};
    if (::stat(device.c_str(), &st) != 0)
        return {};
    std::string boot;
    try {
        boot = std::string(trim(read_file("/proc/sys/kernel/random/boot_id")));
    } catch (const std::exception&) {
        return {};
    }
    return fmt::format("boot {} device {} inode {} changed {}.{:09}", boot, device, st.st_ino,
                       st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
}

} // namespace

std::string kvm_verdict_file() {
    if (::geteuid() == 0)
        return "/run/labctl/kvm-verdict";
    const char* xdg = std::getenv("XDG_RUNTIME_DIR");
    if (xdg == nullptr || xdg[0] != '/')
        return {};
    return std::string(xdg) + "/labctl/kvm-verdict";
}

KvmProbe kept_kvm_probe(const std::string& device, const std::string& file,
                        const std::function<KvmProbe()>& probe) {
    const auto key = verdict_key(device);
    if (!key.empty() && !file.empty()) {
        std::error_code ec;
        if (std::filesystem::exists(file, ec)) {
            try {
                const auto text = read_file(file);
                const auto nl = text.find('\n');
                if (nl != std::string::npos && text.substr(0, nl) == key)
                    return {false,
                            fmt::format("{} (found earlier in this boot and kept in {}; 'labctl "
                                        "doctor' probes again)",
                                        trim(text.substr(nl + 1)), file),
                            true};
            } catch (const std::exception& e) {
                log::debug("KVM verdict in {} not read: {}", file, e.what());
            }
        }
    }
    auto verdict = probe();
    if (verdict.guests_broken && !key.empty() && !file.empty()) {
        try {
            std::filesystem::create_directories(std::filesystem::path(file).parent_path());
            write_file_atomic(file, key + "\n" + verdict.detail + "\n", 0600);
        } catch (const std::exception& e) {
            log::debug("KVM verdict not kept in {}: {}", file, e.what()); // the next run probes
        }
    }
    return verdict;
}

const KvmProbe& cached_kvm_probe() {
    // Only the verdict matters here: a vCPU still looping after 500 ms (2.5 budgets, fork and VM
    // set-up included) is too slow, so nested KVM is not timed to the end (about 1 s here); doctor
    // measures it in full.
    static const KvmProbe k_probe = kept_kvm_probe("/dev/kvm", kvm_verdict_file(), [] {
        return probe_kvm("/dev/kvm", std::chrono::milliseconds(500));
    });
    return k_probe;
}

std::optional<std::string> loopback_port_busy(int port) {
    Fd sock(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (sock.get() < 0)
        return fmt::format("cannot create a socket: {}", std::strerror(errno));
    // Like QEMU's hostfwd: SO_REUSEADDR, so a connection in TIME_WAIT does not count as a user.
    const int one = 1;
    ::setsockopt(sock.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
        return std::string(std::strerror(errno));
    return std::nullopt;
}

std::vector<HostRoute> parse_host_routes(std::string_view text) {
    std::vector<HostRoute> out;
    std::istringstream in{std::string(text)};
    std::string line;
    bool header = true;
    while (std::getline(in, line)) {
        if (header) {
            header = false;
            if (line.rfind("Iface", 0) == 0)
                continue;
        }
        std::istringstream fields(line);
        std::string iface, dest, gateway, flags, refcnt, use, metric, mask;
        if (!(fields >> iface >> dest >> gateway >> flags >> refcnt >> use >> metric >> mask))
            continue;
        const auto d = parse_hex_le(dest);
        const auto g = parse_hex_le(gateway);
        const auto m = parse_hex_le(mask);
        if (!d || !g || !m)
            continue;
        try {
            constexpr unsigned long k_rtf_up = 0x1;
            if ((std::stoul(flags, nullptr, 16) & k_rtf_up) == 0)
                continue;
        } catch (const std::exception&) {
            continue;
        }
        const int prefix = prefix_of(*m);
        const config::Ipv4Network net{*d & config::Ipv4Network{0, prefix}.netmask(), prefix};
        out.push_back({iface, net, *g == 0 ? std::string() : config::format_ipv4(*g)});
    }
    return out;
}

std::vector<HostRoute> read_host_routes(const std::string& path) {
    std::ifstream in(path);
    if (!in)
        return {};
    std::ostringstream ss;
    ss << in.rdbuf();
    return parse_host_routes(ss.str());
}

std::optional<std::uint64_t> free_bytes(const std::string& path) {
    std::filesystem::path p =
        path.empty() ? std::filesystem::path(".") : std::filesystem::path(path);
    std::error_code ec;
    p = std::filesystem::absolute(p, ec);
    if (ec)
        return std::nullopt;
    for (;;) {
        struct statvfs st {};
        if (::statvfs(p.c_str(), &st) == 0)
            return static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
        if (errno != ENOENT && errno != ENOTDIR)
            return std::nullopt;
        if (!p.has_relative_path())
            return std::nullopt;
        p = p.parent_path();
    }
}

bool is_local_libvirt_uri(std::string_view uri) {
    return libvirt::is_local_uri(uri);
}

} // namespace labctl::provision
