// The base image file on this host: its virtual size, and whether a qcow2 file is complete (every
// cluster its metadata references lies inside the file), so a download or copy cut short is
// refused before anything is uploaded.

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include <labctl/config/loader.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/fd.hpp>
#include <labctl/provision/provision.hpp>

#include "provision_parts.hpp"

namespace labctl::provision {

namespace fs = std::filesystem;

std::uint64_t image_virtual_size(const std::string& path, const std::string& format) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw usage_error(fmt::format("cannot read image {}", path),
                          "check image.path in lab.yaml");
    if (format == "qcow2") {
        unsigned char header[32] = {};
        in.read(reinterpret_cast<char*>(header), sizeof header);
        if (in.gcount() != sizeof header || header[0] != 'Q' || header[1] != 'F' ||
            header[2] != 'I' || header[3] != 0xfb)
            throw usage_error(fmt::format("image {} is not a qcow2 file", path),
                              "set image.format to the image's real format");
        std::uint64_t size = 0;
        for (int i = 24; i < 32; ++i)
            size = (size << 8) | header[i];
        return size;
    }
    return static_cast<std::uint64_t>(fs::file_size(path));
}

void check_disk_sizes(const config::LabSpec& spec, std::uint64_t image_size) {
    for (const auto& vm : spec.vms)
        if (image_size > 0 && vm.disk_bytes < image_size)
            throw usage_error(
                fmt::format("VM '{}': disk {} is smaller than the image ({})", vm.name,
                            config::format_size(vm.disk_bytes), config::format_size(image_size)),
                fmt::format("set disk to at least {}", config::format_size(image_size)));
}

namespace {

std::uint64_t be(const unsigned char* p, int n) {
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i)
        v = (v << 8) | p[i];
    return v;
}

class Reader {
public:
    explicit Reader(const std::string& path)
        : m_path(path), m_fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
        if (m_fd.fd < 0)
            throw usage_error(fmt::format("cannot read image {}: {}", path, std::strerror(errno)),
                              "check image.path in lab.yaml");
    }

    /// Exactly `n` bytes at `offset` (the caller checked that they lie inside the file).
    void read(std::uint64_t offset, unsigned char* out, std::size_t n) const {
        std::size_t done = 0;
        while (done < n) {
            const ssize_t r =
                ::pread(m_fd.fd, out + done, n - done, static_cast<off_t>(offset + done));
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                throw usage_error(fmt::format("cannot read image {} at offset {}: {}", m_path,
                                              offset + done, std::strerror(errno)),
                                  "the image or the disk under it is damaged");
            if (r == 0)
                throw usage_error(fmt::format("image {} ended at offset {} while it was read",
                                              m_path, offset + done),
                                  "do not modify the image while labctl provisions from it");
            done += static_cast<std::size_t>(r);
        }
    }

private:
    std::string m_path;
    Fd m_fd;
};

[[noreturn]] void truncated(const std::string& path, std::string_view what, std::uint64_t end,
                            std::uint64_t file_size) {
    throw usage_error(
        fmt::format("image {} is truncated: its qcow2 {} ends at byte {}, but the file has only "
                    "{} bytes",
                    path, what, end, file_size),
        "the download or copy was cut short: fetch the image again (image.sha256 catches this "
        "too)");
}

} // namespace

void check_image_complete(const std::string& path, const std::string& format) {
    if (format != "qcow2")
        return; // a raw file has no metadata to hold it against: only image.sha256 can tell
    std::error_code ec;
    const std::uint64_t file_size = fs::file_size(path, ec);
    if (ec)
        throw usage_error(fmt::format("cannot read image {}: {}", path, ec.message()),
                          "check image.path in lab.yaml");
    const Reader in(path);
    unsigned char h[104] = {};
    if (file_size < 72)
        truncated(path, "header", 72, file_size);
    in.read(0, h, file_size >= sizeof h ? sizeof h : 72);
    if (h[0] != 'Q' || h[1] != 'F' || h[2] != 'I' || h[3] != 0xfb)
        throw usage_error(fmt::format("image {} is not a qcow2 file", path),
                          "set image.format to the image's real format");
    const auto version = be(h + 4, 4);
    const auto cluster_bits = be(h + 20, 4);
    const auto l1_size = be(h + 36, 4);
    const auto l1_offset = be(h + 40, 8);
    const auto refcount_offset = be(h + 48, 8);
    const auto refcount_clusters = be(h + 56, 4);
    if (l1_size == 0 && refcount_clusters == 0)
        return; // a header without tables references no cluster: nothing can be missing
    if (cluster_bits < 9 || cluster_bits > 21)
        throw usage_error(
            fmt::format("image {}: qcow2 cluster_bits {} is invalid", path, cluster_bits),
            "the image is damaged: fetch it again");
    const std::uint64_t cluster = std::uint64_t{1} << cluster_bits;
    std::uint64_t incompatible = 0;
    if (version >= 3) {
        if (file_size < sizeof h)
            truncated(path, "header", sizeof h, file_size);
        incompatible = be(h + 72, 8);
    }
    const bool external_data = (incompatible & (1U << 2)) != 0;
    const std::size_t l2_entry = (incompatible & (1U << 4)) != 0 ? 16 : 8; // extended L2
    const auto inside = [&](std::string_view what, std::uint64_t offset, std::uint64_t bytes) {
        if (offset > file_size || bytes > file_size - offset)
            truncated(path, what, offset + bytes, file_size);
    };
    inside("L1 table", l1_offset, l1_size * 8);
    inside("refcount table", refcount_offset, refcount_clusters * cluster);

    constexpr std::uint64_t k_offset_mask = 0x00fffffffffffe00ULL;
    std::vector<unsigned char> table(static_cast<std::size_t>(refcount_clusters * cluster));
    in.read(refcount_offset, table.data(), table.size());
    for (std::size_t i = 0; i + 8 <= table.size(); i += 8)
        if (const auto block = be(&table[i], 8) & k_offset_mask; block != 0)
            inside("refcount block", block, cluster);

    std::vector<unsigned char> l1(static_cast<std::size_t>(l1_size * 8));
    in.read(l1_offset, l1.data(), l1.size());
    std::vector<unsigned char> l2(static_cast<std::size_t>(cluster));
    // A compressed cluster's descriptor: the host offset in the low 62 - (cluster_bits - 8) bits.
    const unsigned compressed_bits = 62U - static_cast<unsigned>(cluster_bits - 8);
    for (std::size_t i = 0; i < l1.size(); i += 8) {
        const auto l2_offset = be(&l1[i], 8) & k_offset_mask;
        if (l2_offset == 0)
            continue;
        inside("L2 table", l2_offset, cluster);
        in.read(l2_offset, l2.data(), l2.size());
        if (external_data)
            continue;
        for (std::size_t j = 0; j + l2_entry <= l2.size(); j += l2_entry) {
            const auto e = be(&l2[j], 8);
            if ((e & (std::uint64_t{1} << 62)) != 0) {
                const auto host = e & ((std::uint64_t{1} << compressed_bits) - 1);
                inside("compressed cluster", host, 1);
            } else if (const auto data = e & k_offset_mask; data != 0) {
                inside("data cluster", data, cluster);
            }
        }
    }
}

std::string base_image_file(const config::ImageSpec& image, const ProvisionOptions& options) {
    if (!image.path.empty())
        return image.path;
    if (!options.fetch_image)
        throw usage_error(
            fmt::format("image.url {} needs a download, and this command does not download",
                        image.url),
            "run 'labctl up' or 'labctl provision'");
    return options.fetch_image();
}

} // namespace labctl::provision
