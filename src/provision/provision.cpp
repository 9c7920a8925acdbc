#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <labctl/config/ipv4.hpp>
#include <labctl/config/loader.hpp>
#include <labctl/core/encoding.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/fd.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/signals.hpp>
#include <labctl/core/templates.hpp>
#include <labctl/core/version.hpp>
#include <labctl/provision/checksum.hpp>
#include <labctl/provision/host.hpp>
#include <labctl/provision/naming.hpp>
#include <labctl/provision/plan.hpp>
#include <labctl/provision/provision.hpp>
#include <labctl/provision/seed.hpp>
#include <labctl/remote/known_hosts.hpp>

#include "libvirt.hpp"
#include "lv_objects.hpp"
#include "xml.hpp"

namespace labctl::provision {

namespace fs = std::filesystem;
using namespace libvirt;

// ---------------------------------------------------------------------------------------------
// Session

LibvirtSession::LibvirtSession(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
LibvirtSession::LibvirtSession(LibvirtSession&&) noexcept = default;
LibvirtSession& LibvirtSession::operator=(LibvirtSession&&) noexcept = default;
LibvirtSession::~LibvirtSession() = default;

LibvirtSession LibvirtSession::open(const std::string& uri) {
    return LibvirtSession(
        std::make_unique<Impl>(Impl{Connection::open(uri, Connection::Access::read_write)}));
}

const std::string& LibvirtSession::uri() const {
    return m_impl->conn.uri();
}

std::string LibvirtSession::driver() const {
    return m_impl->conn.driver();
}

Inventory LibvirtSession::inventory() const {
    return inspect_connection(m_impl->conn);
}

// ---------------------------------------------------------------------------------------------
// XML

std::string network_xml(const config::LabSpec& spec) {
    const auto net = config::parse_cidr(spec.network.cidr);
    if (!net)
        throw usage_error(
            fmt::format("network.cidr '{}' is not an IPv4 network", spec.network.cidr));
    // DHCP hands out the upper half; reservations (from .10 up) live below it.
    const std::uint32_t size = net->broadcast() - net->address;
    const std::uint32_t start = net->address + std::max<std::uint32_t>((size + 1) / 2, 2);
    return templates::render(templates::load("libvirt/network.xml"),
                             {{"name", xml::escape(spec.network.name)},
                              {"metadata", labctl_metadata_xml({spec.project, {}, {}})},
                              {"domain", xml::escape(spec.network.domain)},
                              {"gateway", config::format_ipv4(net->gateway())},
                              {"netmask", config::format_ipv4(net->netmask())},
                              {"dhcp_start", config::format_ipv4(start)},
                              {"dhcp_end", config::format_ipv4(net->last_host())}});
}

std::string overlay_volume_xml(const config::LabSpec& spec, const config::VmSpec& vm,
                               const std::string& backing_path) {
    return templates::render(templates::load("libvirt/overlay-volume.xml"),
                             {{"name", xml::escape(overlay_volume_name(spec.project, vm.name))},
                              {"capacity", std::to_string(vm.disk_bytes)},
                              {"backing_path", xml::escape(backing_path)},
                              {"backing_format", xml::escape(spec.image.format)}});
}

std::string seed_volume_xml(const config::LabSpec& spec, const config::VmSpec& vm,
                            std::uint64_t bytes) {
    return templates::render(templates::load("libvirt/seed-volume.xml"),
                             {{"name", xml::escape(seed_volume_name(spec.project, vm.name))},
                              {"capacity", std::to_string(bytes)}});
}

namespace {

std::string console_log_path(const std::string& uri, const std::string& domain) {
    if (uri.find("/session") != std::string::npos) {
        const char* cache = std::getenv("XDG_CACHE_HOME");
        const char* home = std::getenv("HOME");
        const std::string base = cache != nullptr && *cache != '\0'
                                     ? std::string(cache)
                                     : fmt::format("{}/.cache", home != nullptr ? home : "/tmp");
        return fmt::format("{}/libvirt/qemu/log/{}-console.log", base, domain);
    }
    return fmt::format("/var/log/libvirt/qemu/{}-console.log", domain);
}

} // namespace

std::string slirp_netdev(const config::VmSpec& vm) {
    // restrict=on: the guest reaches nothing, not even this host; only the hostfwd ports lead in,
    // and only from 127.0.0.1.
    std::string out = "user,id=lab0,restrict=on";
    for (const auto& f : vm.forwards)
        out += fmt::format(",hostfwd=tcp:127.0.0.1:{}-:{}", f.host, f.guest);
    return out;
}

std::string domain_xml(const config::LabSpec& spec, const config::VmSpec& vm,
                       const std::string& domain_type, const std::string& disk_path,
                       const std::string& seed_path, const BootPaths& boot) {
    const std::string name = domain_name(spec.project, vm.name);
    const std::string mac = deterministic_mac(spec.project, vm.name);
    std::string metadata = labctl_metadata_xml({spec.project, vm.name, vm_spec_hash(spec, vm)});
    // The labctl version rides along (informational; not compared).
    const std::string version_element =
        fmt::format("<{0}:version>{1}</{0}:version>", k_metadata_prefix, xml::escape(version()));
    metadata.insert(metadata.rfind("</"), version_element);

    std::string kernel_boot;
    if (!boot.kernel.empty())
        kernel_boot = fmt::format("\n    <kernel>{}</kernel>\n    <initrd>{}</initrd>\n    "
                                  "<cmdline>{}</cmdline>",
                                  xml::escape(boot.kernel), xml::escape(boot.initrd),
                                  xml::escape(spec.image.cmdline.empty()
                                                  ? std::string(config::k_default_cmdline)
                                                  : spec.image.cmdline));
    std::string interface;
    std::string qemu_commandline;
    if (spec.user_network()) {
        // No libvirt network: SLIRP through QEMU's own arguments. Debian 12's libvirt 9.0 rejects
        // the passt backend, and <interface type='user'> cannot restrict the guest or bind the
        // forwards to 127.0.0.1. Slot 0x10: slot 2 collides with the balloon (DESIGN §6).
        qemu_commandline = fmt::format(
            "\n  <qemu:commandline>\n    <qemu:arg value='-netdev'/>\n"
            "    <qemu:arg value='{}'/>\n    <qemu:arg value='-device'/>\n"
            "    <qemu:arg value='virtio-net-pci,netdev=lab0,mac={},bus=pci.0,addr=0x10'/>\n"
            "  </qemu:commandline>",
            xml::escape(slirp_netdev(vm)), mac);
    } else {
        interface = fmt::format("    <interface type='network'>\n      <mac address='{}'/>\n"
                                "      <source network='{}'/>\n      <model type='virtio'/>\n"
                                "    </interface>\n",
                                mac, xml::escape(spec.network.name));
    }
    return templates::render(
        templates::load("libvirt/domain.xml"),
        {{"domain_type", domain_type},
         {"name", xml::escape(name)},
         {"metadata", metadata},
         {"memory", std::to_string(vm.memory_bytes)},
         {"cpus", std::to_string(vm.cpus)},
         {"kernel_boot", kernel_boot},
         {"disk_path", xml::escape(disk_path)},
         {"seed_path", xml::escape(seed_path)},
         {"console_log", xml::escape(console_log_path(spec.libvirt.uri, name))},
         {"interface", interface},
         {"qemu_commandline", qemu_commandline}});
}

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

// ---------------------------------------------------------------------------------------------
// provision

namespace {

/// What this run made, undone in reverse order when the run fails.
class Journal {
public:
    void add(std::string what, std::function<void()> undo) {
        const std::lock_guard lock(m_mutex);
        m_entries.push_back({std::move(what), std::move(undo)});
    }
    void rollback() {
        // The undo steps run without the journal's lock: they take the network's lock, which
        // dhcp_host holds while it adds to the journal (the opposite order would deadlock).
        std::vector<Entry> entries;
        {
            const std::lock_guard lock(m_mutex);
            entries.swap(m_entries);
        }
        for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
            try {
                it->undo();
                log::info("removed {} (created by this run)", it->what);
            } catch (const std::exception& e) {
                log::warn("could not remove {}: {}", it->what, e.what());
            }
        }
    }

private:
    struct Entry {
        std::string what;
        std::function<void()> undo;
    };
    std::mutex m_mutex;
    std::vector<Entry> m_entries;
};

class Provisioner {
public:
    Provisioner(const config::LabSpec& spec, LibvirtSession& session,
                const ProvisionOptions& options)
        : m_spec(spec), m_conn(session.impl().conn), m_options(options) {}

    ProvisionResult run() {
        m_test_driver = m_conn.driver() == "TEST" || m_conn.driver() == "Test";
        const Inventory existing = inspect_connection(m_conn);
        const auto routes = is_local_libvirt_uri(m_spec.libvirt.uri) ? read_host_routes()
                                                                     : std::vector<HostRoute>{};
        m_plan = plan_against(m_spec, existing, routes);
        for (const auto& item : m_plan.items)
            m_actions[{item.kind, item.name}] = item.action;
        check_forward_ports(existing);
        try {
            shared_objects();
            remove_stale();
            per_vm();
        } catch (...) {
            if (m_options.keep_on_failure)
                log::warn("--keep-on-failure: leaving what this run created");
            else
                m_journal.rollback();
            throw;
        }
        return std::move(m_result);
    }

private:
    PlanAction action(ResourceKind kind, const std::string& name) const {
        const auto it = m_actions.find({kind, name});
        return it == m_actions.end() ? PlanAction::keep : it->second;
    }

    void step(const std::string& name) {
        signals::check();
        if (m_options.before_step)
            m_options.before_step(name);
    }

    void changed(std::string act, std::string kind, std::string name, std::string detail = {}) {
        log::info("{} {} {}{}", act, kind, name, detail.empty() ? "" : ": " + detail);
        const std::lock_guard lock(m_mutex);
        m_result.changes.push_back(
            {std::move(act), std::move(kind), std::move(name), std::move(detail)});
    }

    void note(std::string text) {
        log::info("{}", text);
        const std::lock_guard lock(m_mutex);
        if (std::find(m_result.notes.begin(), m_result.notes.end(), text) == m_result.notes.end())
            m_result.notes.push_back(std::move(text));
    }

    // -- network, pool, base image --------------------------------------------------------

    void shared_objects() {
        if (!m_spec.user_network()) {
            step("network");
            network();
        }
        step("pool");
        pool();
        step("base-volume");
        base_volume();
        if (m_spec.image.direct_kernel_boot()) {
            step("boot-volumes");
            m_kernel = boot_volume(kernel_volume_name(m_spec.project), m_spec.image.kernel);
            m_initrd = boot_volume(initrd_volume_name(m_spec.project), m_spec.image.initrd);
        }
    }

    /// mode user: QEMU binds every forward on 127.0.0.1 when the domain starts; a port taken by
    /// anything else would fail the start half-way with QEMU's terse error. Ports of a domain
    /// that keeps running (or is replaced, which stops it first) are its own.
    void check_forward_ports(const Inventory& existing) const {
        if (!m_spec.user_network())
            return;
        if (!is_local_libvirt_uri(m_spec.libvirt.uri)) {
            log::debug("remote libvirt host: its 127.0.0.1 ports are not checked from here");
            return;
        }
        for (const auto& vm : m_spec.vms) {
            const DomainFacts* d = existing.find_domain(domain_name(m_spec.project, vm.name));
            if (d != nullptr && d->active && d->labctl && d->labctl->project == m_spec.project)
                continue;
            for (const auto& f : vm.forwards)
                if (const auto why = loopback_port_busy(f.host))
                    throw Error(ExitCode::preflight,
                                fmt::format("VM '{}': host port {} (forwarded to guest port {}) "
                                            "is already in use on 127.0.0.1: {}",
                                            vm.name, f.host, f.guest, *why),
                                fmt::format("stop what listens there (ss -ltnp 'sport = :{}'), "
                                            "or change the host port in network.forwards",
                                            f.host));
        }
    }

    /// The lab's copy of a direct-boot file in the pool, uploaded through a stream like the base
    /// image (works over qemu+ssh://, and the file becomes readable by the qemu user).
    StorageVolHandle boot_volume(const std::string& name, const std::string& path) {
        const PlanAction act = action(ResourceKind::boot_volume, name);
        if (act == PlanAction::keep) {
            StorageVolHandle v = Connection::find_volume(m_pool.get(), name);
            if (!v)
                throw Error(ExitCode::preflight, fmt::format("volume '{}' disappeared", name));
            return v;
        }
        std::error_code ec;
        const auto size = fs::file_size(path, ec);
        if (ec)
            throw usage_error(fmt::format("cannot read {}: {}", path, ec.message()),
                              "check image.kernel and image.initrd in lab.yaml");
        const auto bytes = static_cast<std::uint64_t>(size);
        if (act == PlanAction::replace)
            delete_volume(m_pool.get(), name);
        const std::string xml = templates::render(
            templates::load("libvirt/base-volume.xml"),
            {{"name", xml::escape(name)}, {"capacity", std::to_string(bytes)}, {"format", "raw"}});
        StorageVolHandle v = create_volume(xml, name);
        const bool uploaded = upload_file(v.get(), name, path, bytes, {});
        changed(act == PlanAction::replace ? "replace" : "create", "volume", name,
                fmt::format("{} from {}, {} {}",
                            name == kernel_volume_name(m_spec.project) ? "kernel" : "initrd", path,
                            config::format_size(bytes),
                            uploaded ? "uploaded" : "(contents not uploaded: test driver)"));
        return v;
    }

    void network() {
        const std::string& name = m_spec.network.name;
        if (action(ResourceKind::network, name) == PlanAction::create) {
            const std::string xml = network_xml(m_spec);
            NetworkHandle net(virNetworkDefineXML(m_conn.get(), xml.c_str()));
            if (!net)
                throw_last_error(fmt::format("cannot define network '{}'", name));
            m_journal.add(fmt::format("network '{}'", name),
                          [this, name] { destroy_network(m_conn, name); });
            if (virNetworkCreate(net.get()) != 0)
                throw_last_error(fmt::format("cannot start network '{}'", name));
            if (virNetworkSetAutostart(net.get(), 1) != 0)
                log::debug("network '{}': autostart not set: {}", name, take_last_error().message);
            changed("create", "network", name, fmt::format("NAT {}", m_spec.network.cidr));
            m_network = std::move(net);
            return;
        }
        m_network = m_conn.find_network(name);
        if (!m_network)
            throw Error(ExitCode::preflight, fmt::format("network '{}' disappeared", name));
        if (virNetworkIsActive(m_network.get()) == 0) {
            if (virNetworkCreate(m_network.get()) != 0)
                throw_last_error(fmt::format("cannot start network '{}'", name));
            changed("start", "network", name);
        }
    }

    void pool() {
        const std::string& name = m_spec.libvirt.pool;
        if (action(ResourceKind::pool, name) == PlanAction::create) {
            const std::string xml = templates::render(
                templates::load("libvirt/pool.xml"),
                {{"name", xml::escape(name)}, {"path", xml::escape(m_spec.libvirt.pool_path)}});
            StoragePoolHandle p(virStoragePoolDefineXML(m_conn.get(), xml.c_str(), 0));
            if (!p)
                throw_last_error(fmt::format("cannot define storage pool '{}'", name));
            m_journal.add(fmt::format("storage pool '{}'", name), [this, name] {
                if (auto h = m_conn.find_pool(name)) {
                    if (virStoragePoolIsActive(h.get()) == 1)
                        virStoragePoolDestroy(h.get());
                    if (virStoragePoolUndefine(h.get()) != 0)
                        throw_last_error(fmt::format("cannot undefine storage pool '{}'", name));
                }
            });
            if (virStoragePoolBuild(p.get(), 0) != 0)
                throw_last_error(fmt::format("cannot build storage pool '{}' at {}", name,
                                             m_spec.libvirt.pool_path));
            if (virStoragePoolCreate(p.get(), 0) != 0)
                throw_last_error(fmt::format("cannot start storage pool '{}'", name));
            if (virStoragePoolSetAutostart(p.get(), 1) != 0)
                log::debug("pool '{}': autostart not set: {}", name, take_last_error().message);
            changed("create", "pool", name,
                    fmt::format("dir pool at {}", m_spec.libvirt.pool_path));
            m_pool = std::move(p);
            return;
        }
        m_pool = m_conn.find_pool(name);
        if (!m_pool)
            throw Error(ExitCode::preflight, fmt::format("storage pool '{}' does not exist", name));
        if (virStoragePoolIsActive(m_pool.get()) == 0) {
            if (virStoragePoolCreate(m_pool.get(), 0) != 0)
                throw_last_error(fmt::format("cannot start storage pool '{}'", name));
            changed("start", "pool", name);
        }
    }

    void base_volume() {
        const std::string name = base_volume_name(m_spec.image);
        if (name.empty())
            throw usage_error("lab.yaml names no image", "set image.path to a cloud image");
        if (action(ResourceKind::base_volume, name) != PlanAction::create) {
            m_base = Connection::find_volume(m_pool.get(), name);
            if (!m_base)
                throw Error(ExitCode::preflight, fmt::format("volume '{}' disappeared", name));
            check_disk_sizes(volume_capacity(m_base.get()));
            return;
        }
        if (m_spec.image.path.empty())
            throw usage_error(
                fmt::format("image.url is not downloaded by labctl yet ({})", m_spec.image.url),
                "download the image and set image.path (with image.sha256) instead");
        const std::string& path = m_spec.image.path;
        const std::uint64_t virtual_size = image_virtual_size(path, m_spec.image.format);
        check_disk_sizes(virtual_size);
        const auto bytes = static_cast<std::uint64_t>(fs::file_size(path));
        const std::string xml =
            templates::render(templates::load("libvirt/base-volume.xml"),
                              {{"name", xml::escape(name)},
                               {"capacity", std::to_string(std::max(bytes, virtual_size))},
                               {"format", xml::escape(m_spec.image.format)}});
        m_base = create_volume(xml, name);
        // The digest is taken from the bytes the stream sends (read once): a mismatch aborts the
        // upload and the journal removes the volume.
        const bool uploaded = upload_file(m_base.get(), name, path, bytes, m_spec.image.sha256);
        changed("create", "volume", name,
                fmt::format("base image, {} {}", config::format_size(bytes),
                            uploaded ? "uploaded" : "(contents not uploaded: test driver)"));
    }

    void check_disk_sizes(std::uint64_t image_size) const {
        for (const auto& vm : m_spec.vms)
            if (image_size > 0 && vm.disk_bytes < image_size)
                throw usage_error(
                    fmt::format("VM '{}': disk {} is smaller than the image ({})", vm.name,
                                config::format_size(vm.disk_bytes),
                                config::format_size(image_size)),
                    fmt::format("set disk to at least {}", config::format_size(image_size)));
    }

    StorageVolHandle create_volume(const std::string& xml, const std::string& name) {
        StorageVolHandle v(virStorageVolCreateXML(m_pool.get(), xml.c_str(), 0));
        if (!v)
            throw_last_error(
                fmt::format("cannot create volume '{}' in pool '{}'", name, m_spec.libvirt.pool));
        m_journal.add(fmt::format("volume '{}'", name),
                      [this, name] { delete_volume(m_pool.get(), name); });
        return v;
    }

    /// Uploads through a libvirt stream (works over remote URIs). The test driver keeps no
    /// volume contents: there the upload is skipped, and provision says so.
    bool begin_upload(virStorageVolPtr vol, const std::string& name, std::uint64_t bytes,
                      StreamHandle& stream) {
        stream.reset(virStreamNew(m_conn.get(), 0));
        if (!stream)
            throw_last_error("cannot create a libvirt stream");
        if (virStorageVolUpload(vol, stream.get(), 0, bytes, 0) != 0) {
            const auto e = take_last_error();
            if (m_test_driver && e.code == VIR_ERR_NO_SUPPORT) {
                note("the test driver stores no volume contents: uploads are skipped");
                return false;
            }
            throw Error(ExitCode::preflight,
                        fmt::format("cannot upload volume '{}': {}", name, e.message));
        }
        return true;
    }

    void send_all(virStreamPtr stream, const char* data, std::size_t size,
                  const std::string& name) {
        while (size > 0) {
            const int n = virStreamSend(stream, data, size);
            if (n < 0) {
                const auto e = take_last_error();
                virStreamAbort(stream);
                throw Error(ExitCode::preflight,
                            fmt::format("upload of volume '{}' failed: {}", name, e.message));
            }
            data += n;
            size -= static_cast<std::size_t>(n);
        }
    }

    void finish_upload(virStreamPtr stream, const std::string& name) {
        if (virStreamFinish(stream) != 0) {
            const auto e = take_last_error();
            virStreamAbort(stream);
            throw Error(ExitCode::preflight,
                        fmt::format("upload of volume '{}' failed: {}", name, e.message));
        }
    }

    /// Streams `path` (exactly `bytes` long) into the volume; on the test driver, which keeps no
    /// contents, it is only read. Every read is checked (a short or failed read is an error,
    /// never a truncated volume), and the SHA-256 of what was read must equal `sha256` when set
    /// before the stream is finished. Returns whether the contents were uploaded.
    bool upload_file(virStorageVolPtr vol, const std::string& name, const std::string& path,
                     std::uint64_t bytes, const std::string& sha256) {
        StreamHandle stream;
        const bool upload = begin_upload(vol, name, bytes, stream);
        const auto fail = [&](const std::string& message, const std::string& hint) {
            if (upload)
                virStreamAbort(stream.get());
            throw usage_error(message, hint);
        };
        Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
        if (fd.fd < 0)
            fail(fmt::format("cannot read {}: {}", path, std::strerror(errno)),
                 "check that the image exists and that you may read it");
        Sha256 digest;
        std::vector<char> buf(1 << 20);
        std::uint64_t sent = 0;
        for (;;) {
            if (signals::interrupted()) {
                if (upload)
                    virStreamAbort(stream.get());
                signals::check();
            }
            const ssize_t n = ::read(fd.fd, buf.data(), buf.size());
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                fail(fmt::format("error while reading {} after {} bytes: {}", path, sent,
                                 std::strerror(errno)),
                     "the image or the disk under it is damaged");
            if (n == 0)
                break;
            const auto got = static_cast<std::size_t>(n);
            digest.update(std::string_view(buf.data(), got));
            if (upload)
                send_all(stream.get(), buf.data(), got, name);
            sent += got;
        }
        if (sent != bytes)
            fail(fmt::format("{} changed while it was read: {} bytes instead of {}", path, sent,
                             bytes),
                 "do not modify the image while labctl provisions from it");
        if (!sha256.empty()) {
            const auto d = digest.finish();
            const auto actual =
                to_hex(std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
            if (actual != sha256)
                fail(fmt::format("image {} has sha256 {}, but image.sha256 is {}", path, actual,
                                 sha256),
                     "the file is corrupt or not the image lab.yaml means");
            log::info("image {}: sha256 verified", path);
        }
        if (upload)
            finish_upload(stream.get(), name);
        return upload;
    }

    void upload_bytes(virStorageVolPtr vol, const std::string& name, const std::string& data) {
        StreamHandle stream;
        if (!begin_upload(vol, name, data.size(), stream))
            return;
        send_all(stream.get(), data.data(), data.size(), name);
        finish_upload(stream.get(), name);
    }

    // -- stale objects ----------------------------------------------------------------------

    void remove_stale() {
        for (const auto& item : m_plan.items) {
            if (item.action != PlanAction::remove)
                continue;
            step(fmt::format("remove:{}", item.name));
            switch (item.kind) {
            case ResourceKind::domain:
                destroy_domain(m_conn, item.name);
                break;
            case ResourceKind::overlay_volume:
            case ResourceKind::seed_volume:
                delete_volume(m_pool.get(), item.name);
                break;
            case ResourceKind::dhcp_host: {
                if (!m_network)
                    continue;
                const std::lock_guard lock(m_network_mutex);
                remove_host_entries(m_network.get(), deterministic_mac(m_spec.project, item.name),
                                    {}, item.name);
                break;
            }
            default:
                continue;
            }
            changed("delete", std::string(kind_name(item.kind)), item.name, item.detail);
        }
    }

    // -- per VM -----------------------------------------------------------------------------

    void per_vm() {
        m_domain_type = resolve_domain_type();
        m_authorized_key = read_authorized_key();
        const std::size_t n = m_spec.vms.size();
        m_result.vms.resize(n);
        const auto workers = static_cast<std::size_t>(std::max(1, m_options.parallel));
        if (workers == 1 || n <= 1) {
            for (std::size_t i = 0; i < n; ++i)
                vm(i);
            return;
        }
        std::atomic<std::size_t> next{0};
        std::mutex error_mutex;
        std::exception_ptr first_error;
        std::atomic<bool>& failed = m_cancelled;
        std::vector<std::thread> threads;
        for (std::size_t w = 0; w < std::min(workers, n); ++w)
            threads.emplace_back([&] {
                for (;;) {
                    const std::size_t i = next.fetch_add(1);
                    if (i >= n || failed.load())
                        return;
                    try {
                        vm(i);
                    } catch (...) {
                        failed = true; // the other VMs' waits stop at their next poll
                        const std::lock_guard lock(error_mutex);
                        if (!first_error)
                            first_error = std::current_exception();
                    }
                }
            });
        for (auto& t : threads)
            t.join();
        if (first_error)
            std::rethrow_exception(first_error);
    }

    std::string resolve_domain_type() {
        const std::string& t = m_spec.libvirt.domain_type;
        if (t != "auto")
            return t;
        // On a local libvirt a guest must really run under KVM: libvirt's capabilities (and
        // /dev/kvm, and KVM_CREATE_VM) all say yes on hosts where KVM guests hang (DESIGN §6).
        // The test driver runs no guests: there libvirt's answer is all there is.
        if (!m_test_driver && is_local_libvirt_uri(m_spec.libvirt.uri)) {
            const KvmProbe& probe = cached_kvm_probe();
            if (!probe.usable) {
                log::info("domain_type auto: KVM is not usable here ({}); using qemu (TCG "
                          "emulation, slow)",
                          probe.detail);
                return "qemu";
            }
            log::debug("domain_type auto: {}", probe.detail);
        }
        CString caps(
            virConnectGetDomainCapabilities(m_conn.get(), nullptr, "x86_64", nullptr, "kvm", 0));
        if (caps) {
            log::debug("domain_type auto: kvm is usable");
            return "kvm";
        }
        log::info("domain_type auto: kvm is not usable here ({}); using qemu (emulation)",
                  take_last_error().message);
        return "qemu";
    }

    std::string read_authorized_key() const {
        const std::string pub = m_spec.ssh.private_key + ".pub";
        std::ifstream in(pub);
        std::string line;
        if (!in || !std::getline(in, line) || line.empty())
            throw usage_error(fmt::format("cannot read the SSH public key {}", pub),
                              fmt::format("create the key pair: ssh-keygen -t ed25519 -N '' -f {}",
                                          m_spec.ssh.private_key));
        return line;
    }

    void vm(std::size_t index) {
        const config::VmSpec& vm = m_spec.vms[index];
        const std::string dom_name = domain_name(m_spec.project, vm.name);
        VmResult& result = m_result.vms[index];
        result.vm = vm.name;
        result.domain = dom_name;
        if (m_spec.user_network()) {
            const auto ssh = m_spec.ssh_address(vm);
            result.ip = fmt::format("{}:{}", ssh.host, ssh.port);
            result.ip_source = "forward";
        } else {
            result.ip = vm.ip;
            result.ip_source = "reservation";
            step(fmt::format("dhcp-host:{}", vm.name));
            dhcp_host(vm);
        }

        const bool replace_domain = action(ResourceKind::domain, dom_name) == PlanAction::replace;
        if (replace_domain) {
            step(fmt::format("replace:{}", vm.name));
            destroy_domain(m_conn, dom_name);
            delete_volume(m_pool.get(), seed_volume_name(m_spec.project, vm.name));
            changed("delete", "domain", dom_name, "spec changed: replaced");
        }

        step(fmt::format("overlay:{}", vm.name));
        const std::string overlay = overlay_volume_name(m_spec.project, vm.name);
        StorageVolHandle disk = Connection::find_volume(m_pool.get(), overlay);
        if (disk && (replace_domain || volume_capacity(disk.get()) != vm.disk_bytes)) {
            delete_volume(m_pool.get(), overlay);
            disk.reset();
        }
        if (!disk) {
            const std::string base_path = take_string(virStorageVolGetPath(m_base.get()));
            disk = create_volume(overlay_volume_xml(m_spec, vm, base_path), overlay);
            changed("create", "volume", overlay,
                    fmt::format("qcow2 overlay, {}", config::format_size(vm.disk_bytes)));
        }

        step(fmt::format("seed:{}", vm.name));
        const HostKey host_key = ensure_host_key(m_spec, vm);
        {
            const std::lock_guard lock(m_known_hosts_mutex);
            pin_host_key(m_spec, vm, host_key);
        }
        const std::string seed_name = seed_volume_name(m_spec.project, vm.name);
        StorageVolHandle seed = Connection::find_volume(m_pool.get(), seed_name);
        if (!seed) {
            const std::string iso =
                build_seed_iso(render_seed(m_spec, vm, m_authorized_key, host_key));
            seed = create_volume(seed_volume_xml(m_spec, vm, iso.size()), seed_name);
            upload_bytes(seed.get(), seed_name, iso);
            changed("create", "volume", seed_name,
                    fmt::format("cloud-init seed, {} bytes", iso.size()));
        }

        step(fmt::format("domain:{}", vm.name));
        DomainHandle dom = m_conn.find_domain(dom_name);
        if (!dom) {
            BootPaths boot;
            if (m_kernel && m_initrd)
                boot = {take_string(virStorageVolGetPath(m_kernel.get())),
                        take_string(virStorageVolGetPath(m_initrd.get()))};
            const std::string xml =
                domain_xml(m_spec, vm, m_domain_type, take_string(virStorageVolGetPath(disk.get())),
                           take_string(virStorageVolGetPath(seed.get())), boot);
            dom.reset(
                virDomainDefineXMLFlags(m_conn.get(), xml.c_str(), VIR_DOMAIN_DEFINE_VALIDATE));
            if (!dom)
                throw_last_error(fmt::format("cannot define domain '{}'", dom_name));
            m_journal.add(fmt::format("domain '{}'", dom_name),
                          [this, dom_name] { destroy_domain(m_conn, dom_name); });
            changed("create", "domain", dom_name,
                    fmt::format("{} vCPU, {}, {}", vm.cpus, config::format_size(vm.memory_bytes),
                                m_domain_type));
        }
        step(fmt::format("start:{}", vm.name));
        if (virDomainIsActive(dom.get()) == 0) {
            if (virDomainCreate(dom.get()) != 0)
                throw_last_error(fmt::format("cannot start domain '{}'", dom_name));
            changed("start", "domain", dom_name);
        }

        if (!m_options.wait)
            return;
        if (m_test_driver && !m_options.probe_factory) {
            note("the test driver runs no guests: the ip, ssh and cloud-init waits are skipped");
            return;
        }
        step(fmt::format("wait:{}", vm.name));
        std::unique_ptr<GuestProbe> probe =
            m_options.probe_factory
                ? m_options.probe_factory(vm)
                : make_libvirt_probe(m_conn, dom_name, m_spec.network.name,
                                     deterministic_mac(m_spec.project, vm.name),
                                     console_log_path(m_spec.libvirt.uri, dom_name));
        WaitTarget target;
        target.vm = vm.name;
        target.strict = m_options.strict;
        const auto ssh = m_spec.ssh_address(vm);
        target.ssh.endpoint = {ssh.host, ssh.port, m_spec.ssh.user};
        // mode user: no DHCP, no lease: the VM is reached through its forward from the start.
        target.address_known = m_spec.user_network();
        target.ssh.known_hosts = m_spec.ssh.known_hosts;
        target.ssh.private_key = m_spec.ssh.private_key;
        target.cancelled = &m_cancelled;
        const WaitResult w = wait_for_guest(*probe, target, m_options.deadlines);
        if (!target.address_known) {
            result.ip = w.ip;
            result.ip_source = w.ip_source;
        }
        result.waited = true;
        result.cloud_init = w.cloud_init;
    }

    void dhcp_host(const config::VmSpec& vm) {
        const std::string mac = deterministic_mac(m_spec.project, vm.name);
        const std::lock_guard lock(m_network_mutex);
        const HostEntries entries = read_host_entries(m_network.get());
        const bool dhcp_ok =
            std::any_of(entries.dhcp.begin(), entries.dhcp.end(), [&](const auto& h) {
                return h.mac == mac && h.ip == vm.ip && h.name == vm.name;
            });
        const bool dhcp_clean =
            std::none_of(entries.dhcp.begin(), entries.dhcp.end(), [&](const auto& h) {
                return (h.mac == mac || h.ip == vm.ip) &&
                       !(h.mac == mac && h.ip == vm.ip && h.name == vm.name);
            });
        const bool dns_ok = std::any_of(entries.dns.begin(), entries.dns.end(), [&](const auto& h) {
            return h.ip == vm.ip && h.hostnames == std::vector<std::string>{vm.name};
        });
        if (dhcp_ok && dhcp_clean && dns_ok)
            return;
        // Stale entries for this MAC or IP go first (plan has refused foreign ones already).
        const bool removed = remove_host_entries(m_network.get(), mac, vm.ip, vm.name);
        add_host_entries(m_network.get(), mac, vm.ip, vm.name);
        const std::string net = m_spec.network.name;
        const std::string name = vm.name;
        const std::string ip = vm.ip;
        m_journal.add(fmt::format("DHCP/DNS host '{}' in network '{}'", name, net),
                      [this, mac, ip, name] {
                          const std::lock_guard l(m_network_mutex);
                          remove_host_entries(m_network.get(), mac, ip, name);
                      });
        changed(removed ? "replace" : "create", "dhcp-host", vm.name,
                fmt::format("{} -> {} in {} (+ DNS {}.{})", mac, vm.ip, net, vm.name,
                            m_spec.network.domain));
    }

    const config::LabSpec& m_spec;
    const Connection& m_conn;
    const ProvisionOptions& m_options;
    bool m_test_driver = false;
    Plan m_plan;
    std::map<std::pair<ResourceKind, std::string>, PlanAction> m_actions;
    Journal m_journal;
    ProvisionResult m_result;
    std::mutex m_mutex;
    std::mutex m_network_mutex;
    std::mutex m_known_hosts_mutex;
    std::atomic<bool> m_cancelled{false}; ///< a VM failed under --parallel: the others stop
    NetworkHandle m_network;
    StoragePoolHandle m_pool;
    StorageVolHandle m_base;
    StorageVolHandle m_kernel;
    StorageVolHandle m_initrd;
    std::string m_domain_type;
    std::string m_authorized_key;
};

} // namespace

ProvisionResult provision(const config::LabSpec& spec, LibvirtSession& session,
                          const ProvisionOptions& options) {
    return Provisioner(spec, session, options).run();
}

ProvisionResult provision(const config::LabSpec& spec, const ProvisionOptions& options) {
    auto session = LibvirtSession::open(spec.libvirt.uri);
    return provision(spec, session, options);
}

} // namespace labctl::provision
