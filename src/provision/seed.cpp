// libisofs needs <stdint.h> before its header, and struct burn_source comes from libburn's.
// clang-format off
#include <stdint.h> // NOLINT(modernize-deprecated-headers)
#include <sys/types.h>
#include <libburn/libburn.h>
#include <libisofs/libisofs.h>
// clang-format on

#include <fmt/format.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>

#include <labctl/core/error.hpp>
#include <labctl/core/file.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/process.hpp>
#include <labctl/core/templates.hpp>
#include <labctl/core/text.hpp>
#include <labctl/core/version.hpp>
#include <labctl/provision/naming.hpp>
#include <labctl/provision/seed.hpp>
#include <labctl/remote/known_hosts.hpp>

#include "libvirt.hpp"
#include "seed_iso.hpp"

namespace labctl::provision {

namespace fs = std::filesystem;

namespace {

/// Every line of `text` prefixed with `indent` (for a YAML block scalar).
std::string indent_lines(const std::string& text, std::string_view indent) {
    std::string out;
    std::istringstream in(text);
    std::string line;
    bool first = true;
    while (std::getline(in, line)) {
        if (!first)
            out += '\n';
        first = false;
        out += indent;
        out += line;
    }
    return out;
}

void init_libisofs() {
    static std::once_flag once;
    std::call_once(once, [] {
        if (iso_init() < 0)
            throw Error(ExitCode::internal, "cannot initialise libisofs");
        // libisofs prints its own messages to stderr; keep them to real failures.
        char queue[] = "NEVER";
        char print[] = "FATAL";
        char prefix[] = "libisofs";
        iso_set_msgs_severities(queue, print, prefix);
    });
}

using ImageHandle = libvirt::CHandle<IsoImage, iso_image_unref>;
using WriteOptsHandle = libvirt::CHandle<IsoWriteOpts, iso_write_opts_free>;

void check_iso(int rc, std::string_view what) {
    if (rc < 0)
        throw Error(
            ExitCode::internal,
            fmt::format("cannot build the cloud-init seed: {} failed (libisofs error {:#x})", what,
                        static_cast<unsigned>(rc)));
}

void add_file(IsoDir* root, const char* name, const std::string& content) {
    // The memory stream takes the malloc'd buffer and frees it; the new file takes the stream.
    auto* buf = static_cast<unsigned char*>(std::malloc(content.empty() ? 1 : content.size()));
    if (buf == nullptr)
        throw std::bad_alloc();
    std::memcpy(buf, content.data(), content.size());
    IsoStream* stream = nullptr;
    const int rc = iso_memory_stream_new(buf, content.size(), &stream);
    if (rc < 0) {
        std::free(buf);
        check_iso(rc, "iso_memory_stream_new");
    }
    IsoFile* file = nullptr;
    const int added = iso_tree_add_new_file(root, name, stream, &file);
    if (added < 0) {
        iso_stream_unref(stream);
        check_iso(added, fmt::format("adding {}", name));
    }
    iso_node_set_permissions(reinterpret_cast<IsoNode*>(file), 0444);
}

} // namespace

HostKey ensure_host_key(const config::LabSpec& spec, const config::VmSpec& vm) {
    const fs::path dir = fs::path(spec.state_dir()) / "hostkeys" / vm.name;
    const fs::path key = dir / "ssh_host_ed25519_key";
    const fs::path pub = dir / "ssh_host_ed25519_key.pub";
    if (!fs::exists(key) || !fs::exists(pub)) {
        std::error_code ec;
        fs::create_directories(dir, ec);
        if (!ec)
            fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace, ec);
        if (ec)
            throw Error(ExitCode::preflight,
                        fmt::format("cannot create {} for the host key of VM '{}': {}",
                                    dir.string(), vm.name, ec.message()),
                        "check the free space and the permissions of that directory");
        // A key without its .pub (or the reverse) is a half-written pair: both go, and go again
        // when ssh-keygen fails, so no partial key is ever trusted by a later run.
        const auto remove_pair = [&] {
            std::error_code ignored;
            fs::remove(key, ignored);
            fs::remove(pub, ignored);
        };
        remove_pair();
        ProcessOptions opts;
        opts.timeout = std::chrono::seconds(60);
        const auto r =
            run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                         fmt::format("{}@{}", vm.name, spec.project), "-f", key.string()},
                        opts);
        if (!r.ok()) {
            remove_pair();
            throw Error(ExitCode::preflight,
                        fmt::format("ssh-keygen could not write the host key of VM '{}' to {}: {}",
                                    vm.name, key.string(),
                                    r.timed_out ? std::string("timed out after 60 s")
                                                : std::string(trim(r.err + r.out))),
                        fmt::format("check the free space and the permissions of {} (ssh-keygen "
                                    "comes with openssh-client)",
                                    dir.string()));
        }
        log::debug("generated the SSH host key of VM '{}' in {}", vm.name, dir.string());
    }
    return {std::string(trim(read_file(key.string()))), std::string(trim(read_file(pub.string())))};
}

std::string read_authorized_key(const config::LabSpec& spec) {
    const std::string pub = spec.ssh.private_key + ".pub";
    std::ifstream in(pub);
    std::string line;
    if (!in || !std::getline(in, line) || line.empty())
        throw usage_error(fmt::format("cannot read the SSH public key {}", pub),
                          fmt::format("create the key pair: ssh-keygen -t ed25519 -N '' -f {}",
                                      spec.ssh.private_key));
    return line;
}

void pin_host_key(const config::LabSpec& spec, const config::VmSpec& vm, const HostKey& key) {
    // Pinned under the address labctl connects to: in mode user that is "[127.0.0.1]:<port>", the
    // form both libssh2 and OpenSSH look up for a non-22 port.
    // The key is pinned at one address only: under an address the VM had before (its ip or
    // the network mode changed) it would let whatever takes that address later pass as the VM.
    const auto at = spec.ssh_address(vm);
    remote::forget_host_keys(spec.ssh.known_hosts, {key.public_key});
    remote::pin_host_keys(spec.ssh.known_hosts, at.host, at.port, {key.public_key});
}

std::string instance_id(const config::LabSpec& spec, const config::VmSpec& vm) {
    return fmt::format("labctl-{}", vm_spec_hash(spec, vm).substr(0, 16));
}

namespace {

/// What cloud-init installs at first boot. A labctl-built image has all of it baked in and its
/// guest must contact nothing (mode user restricts it anyway), so then there is no packages key.
std::string packages_block(const config::LabSpec& spec) {
    if (spec.image.labctl_built())
        return "# no package installs: the image labctl built has everything baked in";
    return "packages:\n  - qemu-guest-agent\n  - rsync\n  - docker.io";
}

/// mode nat: DHCP from libvirt's dnsmasq (the reservation holds the VM's address). mode user:
/// static, because DHCP under SLIRP failed with ifupdown (DESIGN §6); no nameservers, the guest
/// is restricted and resolves nothing.
std::string addressing_block(const config::LabSpec& spec) {
    if (!spec.user_network())
        return "    dhcp4: true";
    return fmt::format("    dhcp4: false\n    addresses:\n      - {}/24\n    gateway4: {}",
                       config::k_user_guest_ip, config::k_user_gateway);
}

} // namespace

SeedFiles render_seed(const config::LabSpec& spec, const config::VmSpec& vm,
                      const std::string& authorized_key, const HostKey& host_key) {
    SeedFiles out;
    out.user_data =
        templates::render(templates::load("cloud-init/user-data"),
                          {{"version", std::string(version())},
                           {"vm", vm.name},
                           {"project", spec.project},
                           {"fqdn", fmt::format("{}.{}", vm.name, spec.network.domain)},
                           {"user", spec.ssh.user},
                           {"authorized_key", std::string(trim(authorized_key))},
                           {"host_key_private", indent_lines(host_key.private_key, "    ")},
                           {"host_key_public", host_key.public_key},
                           {"packages", packages_block(spec)}});
    out.meta_data = templates::render(templates::load("cloud-init/meta-data"),
                                      {{"instance_id", instance_id(spec, vm)}, {"vm", vm.name}});
    out.network_config = templates::render(templates::load("cloud-init/network-config"),
                                           {{"mac", deterministic_mac(spec.project, vm.name)},
                                            {"addressing", addressing_block(spec)}});
    return out;
}

std::string build_seed_iso(const SeedFiles& files) {
    init_libisofs();
    IsoImage* raw_image = nullptr;
    check_iso(iso_image_new("cidata", &raw_image), "iso_image_new");
    ImageHandle image(raw_image);
    iso_image_set_volume_id(image.get(), "cidata");
    IsoDir* root = iso_image_get_root(image.get());
    add_file(root, "user-data", files.user_data);
    add_file(root, "meta-data", files.meta_data);
    add_file(root, "network-config", files.network_config);

    IsoWriteOpts* raw_opts = nullptr;
    check_iso(iso_write_opts_new(&raw_opts, 0), "iso_write_opts_new");
    WriteOptsHandle opts(raw_opts);
    check_iso(iso_write_opts_set_rockridge(opts.get(), 1), "enabling Rock Ridge");
    check_iso(iso_write_opts_set_joliet(opts.get(), 1), "enabling Joliet");
    check_iso(iso_write_opts_set_always_gmt(opts.get(), 1), "setting GMT times");

    ::burn_source* created = nullptr;
    check_iso(iso_image_create_burn_source(image.get(), opts.get(), &created),
              "iso_image_create_burn_source");
    // In C++ libburn declares its structs in namespace burn; libisofs forward-declares the same C
    // struct globally.
    auto* source = reinterpret_cast<burn::burn_source*>(created);
    // The size libisofs announced: the image is complete only when every byte of it was read.
    const std::int64_t expected = source->get_size != nullptr ? source->get_size(source) : -1;
    // The source is freed on every way out, a failed read included.
    const std::unique_ptr<burn::burn_source, void (*)(burn::burn_source*)> owned(
        source, [](burn::burn_source* s) {
            s->free_data(s);
            std::free(s);
        });
    return read_iso_image(
        [source](unsigned char* buf, int size) {
            return source->read_xt != nullptr ? source->read_xt(source, buf, size)
                                              : source->read(source, buf, size);
        },
        expected);
}

std::string read_iso_image(const std::function<int(unsigned char* buf, int size)>& read,
                           std::int64_t expected) {
    std::string iso;
    unsigned char block[2048];
    int n = 0;
    for (;;) {
        n = read(block, static_cast<int>(sizeof block));
        if (n <= 0)
            break; // 0: the end; < 0: libisofs failed (reported below, never a shorter image)
        iso.append(reinterpret_cast<const char*>(block), static_cast<std::size_t>(n));
        if (n < static_cast<int>(sizeof block))
            break;
    }
    const std::string of =
        expected >= 0 ? fmt::format("{} of the {} bytes it announced", iso.size(), expected)
                      : fmt::format("{} bytes (it announced no size)", iso.size());
    if (n < 0)
        throw Error(ExitCode::internal,
                    fmt::format("cannot build the cloud-init seed: reading the ISO image from "
                                "libisofs failed (error {}) after {}",
                                n, of));
    if (iso.empty() || iso.size() % 2048 != 0 ||
        (expected >= 0 && iso.size() != static_cast<std::uint64_t>(expected)))
        throw Error(ExitCode::internal,
                    fmt::format("cannot build the cloud-init seed: libisofs gave {} ISO image: {}",
                                expected >= 0 && iso.size() > static_cast<std::uint64_t>(expected)
                                    ? "a longer"
                                    : "an incomplete",
                                of));
    return iso;
}

} // namespace labctl::provision
