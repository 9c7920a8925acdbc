#include <fcntl.h>
#include <fmt/format.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

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
    int get() const { return m_fd; }

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

KvmProbe probe_kvm(const std::string& device) {
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
    Fd vm(::ioctl(kvm.get(), KVM_CREATE_VM, 0UL));
    if (vm.get() < 0)
        return {false, fmt::format("KVM_CREATE_VM on {} failed: {}", device, std::strerror(errno))};
    return {true, fmt::format("{} usable (KVM API {}, a test VM was created)", device, api)};
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
