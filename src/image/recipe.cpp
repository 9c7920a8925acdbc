#include <fmt/format.h>

#include <algorithm>
#include <regex>
#include <set>
#include <sstream>

#include <labctl/core/encoding.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/file.hpp>
#include <labctl/core/text.hpp>
#include <labctl/image/recipe.hpp>

namespace labctl::image {

namespace {

std::vector<std::string> words(std::string_view s) {
    std::vector<std::string> out;
    std::istringstream in{std::string(s)};
    for (std::string w; in >> w;)
        out.push_back(w);
    return out;
}

bool contains(const std::vector<std::string>& v, std::string_view x) {
    return std::find(v.begin(), v.end(), x) != v.end();
}

/// A release suite such as "bookworm", as opposed to "bookworm-security" or "bookworm-updates":
/// the mirror serving it is the one that has the base system.
bool is_release_suite(std::string_view suite) {
    return !suite.empty() && suite.find('-') == std::string_view::npos &&
           suite.find('/') == std::string_view::npos;
}

struct Candidate {
    std::string uri;
    std::vector<std::string> suites;
};

std::optional<std::string> choose(const std::vector<Candidate>& candidates,
                                  std::string_view suite) {
    for (const auto& c : candidates)
        if (contains(c.suites, suite))
            return c.uri;
    for (const auto& c : candidates)
        if (std::any_of(c.suites.begin(), c.suites.end(),
                        [](const std::string& s) { return is_release_suite(s); }))
            return c.uri;
    return std::nullopt;
}

bool usable_uri(std::string_view uri) {
    return uri.rfind("http://", 0) == 0 || uri.rfind("https://", 0) == 0 ||
           uri.rfind("file:/", 0) == 0;
}

} // namespace

std::vector<std::string> base_packages() {
    // systemd-sysv: systemd as PID 1. cloud-init: NoCloud seed. The rest is what labctl's later
    // stages use on the guest: sshd, rsync for deploy, docker with Debian's compose v1, sudo,
    // qemu-guest-agent for libvirt, ip for the network checks, resize2fs for a grown disk. dbus
    // and libpam-systemd: without them systemctl works for root only and logind does not run.
    // apparmor: Debian's kernel enables AppArmor, and dockerd then refuses to start containers
    // unless apparmor_parser can load its docker-default profile. nftables, fail2ban (with
    // python3-systemd for its journal backend), auditd and lynis: harden's host parts and verify
    // --lynis, so a guest without a route out has them.
    std::vector<std::string> p{
        "apparmor",
        "auditd",
        "ca-certificates",
        "cloud-init",
        "dbus",
        "docker-compose",
        "docker.io",
        "e2fsprogs",
        "fail2ban",
        "iproute2",
        "libpam-systemd",
        "linux-image-cloud-amd64",
        "lynis",
        "nftables",
        "openssh-server",
        "python3-systemd",
        "qemu-guest-agent",
        "rsync",
        "sudo",
        "systemd-sysv",
    };
    std::sort(p.begin(), p.end());
    return p;
}

std::vector<std::string> package_set(const std::vector<std::string>& extra) {
    std::set<std::string> all;
    for (const auto& p : base_packages())
        all.insert(p);
    for (const auto& p : extra)
        all.insert(p);
    return {all.begin(), all.end()};
}

std::string kernel_cmdline() {
    // root=/dev/vda: the disk is one unpartitioned ext4 filesystem on the first virtio disk.
    // net.ifnames=0: the NIC is eth0 whatever PCI slot libvirt gives it, so a network-config can
    // name it. console=ttyS0: boot and cloud-init output reach the serial log.
    return "root=/dev/vda rw console=ttyS0 net.ifnames=0 biosdevname=0";
}

std::string cloud_cfg() {
    // Module lists here replace the packaged /etc/cloud/cloud.cfg ones (cloud-init merges lists by
    // replacement). Left out, because they would fail or reach the network in a guest that has no
    // route out: growpart (no partition table), locale (no locales package), ntp (no reachable
    // server; systemd-timesyncd is masked too), package-update-upgrade-install, apt-configure,
    // snap, ssh-import-id, grub-dpkg, byobu, fan, landscape, lxd, puppet, chef, mcollective,
    // salt-minion, rightscale_userdata, reset_rmc, refresh_rmc_and_interface, install-hotplug and
    // phone-home.
    return R"(# Written by labctl image build. NoCloud only; no module that needs the network.
datasource_list: [NoCloud]
# The guest has no route out: never touch packages at boot.
package_update: false
package_upgrade: false
package_reboot_if_required: false
apt_preserve_sources_list: true
# The hostname must resolve (sudo complains otherwise) and there is no DNS.
manage_etc_hosts: true
# resize2fs (e2fsprogs) grows the root filesystem when the disk was made larger.
resize_rootfs: true
growpart:
  mode: "off"
system_info:
  network:
    # systemd-networkd renders a static network-config v2 cleanly (ifupdown is not installed).
    renderers: [networkd]
cloud_init_modules:
  - migrator
  - seed_random
  - bootcmd
  - write-files
  - resizefs
  - disk_setup
  - mounts
  - set_hostname
  - update_hostname
  - update_etc_hosts
  - ca-certs
  - rsyslog
  - users-groups
  - ssh
cloud_config_modules:
  - keyboard
  - set-passwords
  - apt-pipelining
  - timezone
  - disable-ec2-metadata
  - runcmd
cloud_final_modules:
  - write-files-deferred
  - scripts-vendor
  - scripts-per-once
  - scripts-per-boot
  - scripts-per-instance
  - scripts-user
  - ssh-authkey-fingerprints
  - keys-to-console
  - final-message
  - power-state-change
)";
}

std::vector<TreeFile> tree_files() {
    return {
        {"etc/cloud/cloud.cfg.d/90_labctl.cfg", cloud_cfg(), 0644},
        // fsck pass 1: the root is checked by systemd-fsck-root like on any Debian system.
        {"etc/fstab", "# Written by labctl image build\n/dev/vda / ext4 rw,errors=remount-ro 0 1\n",
         0644},
        // cloud-init sets the real name from the seed's meta-data.
        {"etc/hostname", "localhost\n", 0644},
        {"etc/hosts", "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n", 0644},
        // No resolver: the guest reaches nothing outside (SLIRP restrict=on); the host's
        // resolv.conf must not leak into the image.
        {"etc/resolv.conf", "# labctl guests have no DNS (no route out)\n", 0644},
    };
}

std::vector<TreeLink> tree_links() {
    const std::string lib = "/lib/systemd/system/";
    return {
        // One machine id per guest: D-Bus reads the one systemd generates at first boot.
        {"var/lib/dbus/machine-id", "/etc/machine-id"},
        // Masked: there is no time server to reach, and its failures would show in the journal.
        {"etc/systemd/system/systemd-timesyncd.service", "/dev/null"},
        // apt's daily timers would only fail against an unreachable mirror and leave failed units.
        {"etc/systemd/system/apt-daily.timer", "/dev/null"},
        {"etc/systemd/system/apt-daily-upgrade.timer", "/dev/null"},
        // What `systemctl enable systemd-networkd` does (Debian ships it disabled); done as links
        // so the build needs no chroot step.
        {"etc/systemd/system/dbus-org.freedesktop.network1.service",
         lib + "systemd-networkd.service"},
        {"etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
         lib + "systemd-networkd.service"},
        {"etc/systemd/system/sockets.target.wants/systemd-networkd.socket",
         lib + "systemd-networkd.socket"},
        {"etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service",
         lib + "systemd-networkd-wait-online.service"},
    };
}

std::vector<std::string> mmdebstrap_args() {
    return {
        "--variant=apt",
        "--mode=root",
        "--format=directory",
        // Documentation and translations are never read on a lab guest; leaving them out saves
        // about a fifth of the image. Copyright files stay.
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        "--dpkgopt=path-include=/usr/share/locale/locale.alias",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        "--aptopt=Acquire::Languages \"none\"",
    };
}

std::string inputs_hash(const BuildOptions& options) {
    // One canonical text with every input, each length-prefixed so no two input sets can produce
    // the same text.
    std::string text;
    auto add = [&text](std::string_view key, std::string_view value) {
        text += fmt::format("{} {}\n{}\n", key, value.size(), value);
    };
    add("format", std::to_string(k_format_version));
    add("suite", options.suite);
    add("mirror", options.mirror);
    for (const auto& p : package_set(options.extra_packages))
        add("package", p);
    for (const auto& a : mmdebstrap_args())
        add("mmdebstrap", a);
    add("cmdline", kernel_cmdline());
    add("disk_bytes", std::to_string(k_disk_bytes));
    for (const auto& f : tree_files()) {
        add("file", f.path);
        add("mode", fmt::format("{:o}", f.mode));
        add("content", f.content);
    }
    for (const auto& l : tree_links()) {
        add("link", l.path);
        add("target", l.target);
    }
    return sha256_hex(text);
}

std::optional<std::string> mirror_from_deb822(std::string_view text, std::string_view suite) {
    std::vector<Candidate> candidates;
    std::map<std::string, std::string> fields;
    auto flush = [&]() {
        const auto types = words(fields["types"]);
        const auto enabled = lower(trim(fields["enabled"]));
        const auto uris = words(fields["uris"]);
        if (contains(types, "deb") && enabled != "no" && !uris.empty() && usable_uri(uris.front()))
            candidates.push_back({uris.front(), words(fields["suites"])});
        fields.clear();
    };
    std::string last_key;
    std::istringstream in{std::string(text)};
    for (std::string line; std::getline(in, line);) {
        if (trim(line).empty()) {
            flush();
            last_key.clear();
            continue;
        }
        if (line[0] == '#')
            continue;
        if (line[0] == ' ' || line[0] == '\t') {
            // Continuation line (multi-line field value).
            if (!last_key.empty())
                fields[last_key] += " " + std::string(trim(line));
            continue;
        }
        const auto colon = line.find(':');
        if (colon == std::string::npos)
            continue;
        const std::string key = lower(trim(std::string_view(line).substr(0, colon)));
        fields[key] = std::string(trim(std::string_view(line).substr(colon + 1)));
        last_key = key;
    }
    flush();
    return choose(candidates, suite);
}

std::optional<std::string> mirror_from_sources_list(std::string_view text, std::string_view suite) {
    std::vector<Candidate> candidates;
    std::istringstream in{std::string(text)};
    for (std::string line; std::getline(in, line);) {
        if (const auto hash = line.find('#'); hash != std::string::npos)
            line.erase(hash);
        auto w = words(line);
        if (w.size() < 3 || w[0] != "deb")
            continue;
        std::size_t i = 1;
        if (w[1].front() == '[') {
            // Options in brackets: "[arch=amd64 signed-by=...]".
            while (i < w.size() && w[i].back() != ']')
                ++i;
            ++i;
        }
        if (i + 1 >= w.size() || !usable_uri(w[i]))
            continue;
        candidates.push_back({w[i], {w[i + 1]}});
    }
    return choose(candidates, suite);
}

std::string host_mirror(std::string_view suite, const std::filesystem::path& apt_dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    std::vector<fs::path> deb822, one_line;
    for (const auto& e : fs::directory_iterator(apt_dir / "sources.list.d", ec)) {
        if (e.path().extension() == ".sources")
            deb822.push_back(e.path());
        else if (e.path().extension() == ".list")
            one_line.push_back(e.path());
    }
    // apt reads the files in name order; the first match wins as it would for apt.
    std::sort(deb822.begin(), deb822.end());
    std::sort(one_line.begin(), one_line.end());
    one_line.insert(one_line.begin(), apt_dir / "sources.list");
    for (const auto& p : deb822)
        if (auto m = mirror_from_deb822(read_file(p.string()), suite))
            return *m;
    for (const auto& p : one_line)
        if (fs::exists(p, ec))
            if (auto m = mirror_from_sources_list(read_file(p.string()), suite))
                return *m;
    return std::string(k_default_mirror);
}

std::filesystem::path default_cache_dir(bool is_root,
                                        const std::map<std::string, std::string>& env) {
    if (is_root)
        return "/var/cache/labctl/images";
    auto get = [&env](const char* k) -> std::string {
        auto it = env.find(k);
        return it == env.end() ? std::string{} : it->second;
    };
    // XDG says a relative value is invalid and must be ignored.
    if (const auto xdg = get("XDG_CACHE_HOME"); !xdg.empty() && xdg.front() == '/')
        return std::filesystem::path(xdg) / "labctl" / "images";
    if (const auto home = get("HOME"); !home.empty())
        return std::filesystem::path(home) / ".cache" / "labctl" / "images";
    throw usage_error("cannot choose an image cache directory: HOME is not set",
                      "pass --cache-dir DIR");
}

void validate(const BuildOptions& options) {
    // Everything here ends up in mmdebstrap's argv and the cache path: no option syntax, no
    // whitespace, no path separators.
    static const std::regex suite_re("[a-z0-9][a-z0-9.-]*");
    static const std::regex package_re("[a-z0-9][a-z0-9+.-]+");
    if (!std::regex_match(options.suite, suite_re))
        throw usage_error(fmt::format("invalid suite '{}'", options.suite),
                          "use a Debian suite or codename such as 'bookworm'");
    for (const auto& p : options.extra_packages)
        if (!std::regex_match(p, package_re))
            throw usage_error(fmt::format("invalid package name '{}'", p),
                              "Debian package names are lower-case letters, digits and + - .");
    if (!options.mirror.empty() && (!usable_uri(options.mirror) ||
                                    options.mirror.find_first_of(" \t\r\n") != std::string::npos))
        throw usage_error(fmt::format("invalid mirror '{}'", options.mirror),
                          "give an http://, https:// or file:/ URL of a Debian mirror");
}

std::string cache_entry_name(std::string_view suite, std::string_view inputs_hash) {
    return fmt::format("{}-{}", suite, inputs_hash.substr(0, 16));
}

} // namespace labctl::image
