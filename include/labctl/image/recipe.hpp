#pragma once
// The pure half of `labctl image build`: what goes into the image and how its cache key is made.
// No I/O here except where a function says so, so unit tests can pin every input of the key.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <labctl/image/build.hpp>

namespace labctl::image {

/// Bumped whenever the build steps change in a way the other inputs do not show (mkfs options,
/// customisation code): a new version means a new cache key.
inline constexpr int k_format_version = 1;

/// Virtual size of the disk; the ext4 filesystem fills it, so the guest needs no resize at boot.
inline constexpr std::uint64_t k_disk_bytes = 8ULL << 30;

/// Used when the host's apt sources name no Debian mirror.
inline constexpr std::string_view k_default_mirror = "http://deb.debian.org/debian";

/// A file the customisation step writes into the tree (path relative to the tree root).
struct TreeFile {
    std::string path;
    std::string content;
    unsigned mode = 0644;
};

/// A symbolic link the customisation step creates (path relative to the tree root).
struct TreeLink {
    std::string path;
    std::string target;
};

/// Packages every image has (sorted), before the user's extra ones.
std::vector<std::string> base_packages();

/// base_packages() + extra, sorted and without duplicates: the order on the command line must not
/// change the image or its key.
std::vector<std::string> package_set(const std::vector<std::string>& extra);

/// The kernel command line for direct kernel boot of the unpartitioned root disk.
std::string kernel_cmdline();

/// The cloud-init settings baked into /etc/cloud/cloud.cfg.d/ (NoCloud only; no module that
/// needs the network or a missing tool).
std::string cloud_cfg();

/// Every file the customisation step writes (cloud.cfg.d, fstab, hostname, hosts, apt's
/// no-recommends setting, the networkd drop-in...).
std::vector<TreeFile> tree_files();

/// Every link the customisation step creates: systemd-timesyncd masked, systemd-networkd enabled.
std::vector<TreeLink> tree_links();

/// mmdebstrap's fixed options (variant, mode, what dpkg leaves out); suite, packages, target and
/// mirror are added by the build.
std::vector<std::string> mmdebstrap_args();

/// The cache key: SHA-256 over the format version, suite, mirror, package set, kernel command line
/// and every customisation file. `options.mirror` must already be resolved.
std::string inputs_hash(const BuildOptions& options);

/// The first Debian mirror URI in deb822 sources text (`Types: deb`, not disabled) whose suites
/// include `suite`; failing that, the first one with a plain release suite (no `-security`,
/// `-updates`, `-backports`); failing that, nullopt.
std::optional<std::string> mirror_from_deb822(std::string_view text, std::string_view suite);

/// The same for one-line sources.list text (`deb [opts] URI suite components`).
std::optional<std::string> mirror_from_sources_list(std::string_view text, std::string_view suite);

/// Reads the host's apt sources (`<apt_dir>/sources.list.d/*.sources`, then `*.list` and
/// `<apt_dir>/sources.list`) and returns the mirror for `suite`, or k_default_mirror.
std::string host_mirror(std::string_view suite, const std::filesystem::path& apt_dir = "/etc/apt");

/// Default cache directory: root → /var/cache/labctl/images; otherwise
/// $XDG_CACHE_HOME/labctl/images or $HOME/.cache/labctl/images. `env` maps variable names to values
/// (tests pass their own).
std::filesystem::path default_cache_dir(bool is_root,
                                        const std::map<std::string, std::string>& env);

/// Usage checks of the options (suite, package names, mirror URL); throws Error(usage).
void validate(const BuildOptions& options);

/// The name of the cache entry for a key: `<suite>-<first 16 hex digits>`.
std::string cache_entry_name(std::string_view suite, std::string_view inputs_hash);

} // namespace labctl::image
