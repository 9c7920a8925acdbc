#pragma once
// `labctl image build`: a bootable Debian cloud image made locally with mmdebstrap from the host's
// Debian mirror (no image download), cached under a key that hashes every input.
//
// Errors (labctl::Error): exit 2 (usage) for an invalid suite, package name, mirror or cache dir;
// exit 3 (preflight) when a host tool is missing (the message names its Debian package), labctl
// does not run as root, or mmdebstrap / mkfs.ext4 / qemu-img fail (mirror unreachable, disk full);
// exit 1 (internal) when the built tree has no kernel; exit 130 on Ctrl-C, after removing the
// half-built image.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace labctl::image {

struct BuildOptions {
    std::string suite = "bookworm";
    std::filesystem::path cache_dir; // default: $XDG_CACHE_HOME/labctl/images or
                                     // ~/.cache/labctl/images (root: /var/cache/labctl/images)
    std::string mirror;              // default: taken from the host's apt sources
    std::vector<std::string> extra_packages;
    bool force = false; // rebuild even if cached
};

struct BuiltImage {
    std::filesystem::path disk;   // qcow2, unpartitioned ext4 root (direct kernel boot)
    std::filesystem::path kernel; // vmlinuz next to it
    std::filesystem::path initrd; // initrd.img next to it
    std::string cmdline;          // e.g. "root=/dev/vda rw console=ttyS0 ..."
    std::string sha256;           // of disk
    std::string inputs_hash;      // the cache key
    std::uint64_t size_bytes = 0; // of the qcow2 file
    bool cached = false;          // true when reused without building
};

/// Builds the image (or reuses the cached one with the same inputs hash) and returns where it is.
BuiltImage build(const BuildOptions& options);

/// The cached image for these inputs, without building: nullopt when it is not built yet (what
/// `labctl plan` and `status` need, which must not start a build).
std::optional<BuiltImage> find_cached(const BuildOptions& options);

} // namespace labctl::image
