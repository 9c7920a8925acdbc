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
#include <functional>
#include <map>
#include <mutex>
#include <set>

#include <labctl/config/ipv4.hpp>
#include <labctl/config/loader.hpp>
#include <labctl/core/encoding.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/fd.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/parallel.hpp>
#include <labctl/core/signals.hpp>
#include <labctl/core/templates.hpp>
#include <labctl/core/text.hpp>
#include <labctl/core/version.hpp>
#include <labctl/provision/checksum.hpp>
#include <labctl/provision/host.hpp>
#include <labctl/provision/naming.hpp>
#include <labctl/provision/plan.hpp>
#include <labctl/provision/provision.hpp>
#include <labctl/provision/seed.hpp>
#include <labctl/remote/known_hosts.hpp>

#include "journal.hpp"
#include "libvirt.hpp"
#include "lv_objects.hpp"
#include "provision_parts.hpp"

namespace labctl::provision {

namespace fs = std::filesystem;
using namespace libvirt;

// ---------------------------------------------------------------------------------------------
// provision

namespace {

class Provisioner {
public:
    Provisioner(const config::LabSpec& spec, LibvirtSession& session,
                const ProvisionOptions& options)
        : m_spec(spec), m_conn(session.impl().conn), m_options(options),
          m_cancel(options.cancelled != nullptr ? options.cancelled : &m_cancelled) {}

    /// After run() succeeded: removes what it made, newest first (another host of the lab
    /// failed). What could not be removed is in the outcome.
    Journal::Outcome undo() { return m_journal.rollback(); }

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
        } catch (const Error& e) {
            // Judged before the rollback, whose own calls fail the same way on a dead connection.
            const bool lost = connection_lost(m_conn.get());
            const bool kept = m_options.keep_on_failure;
            if (kept)
                log::warn("--keep-on-failure: leaving what this run created");
            const Journal::Outcome outcome = kept ? m_journal.keep() : m_journal.rollback();
            if (lost && e.code() != ExitCode::provision && e.code() != ExitCode::interrupted)
                throw Error(
                    ExitCode::provision,
                    fmt::format("provision: the libvirt connection was lost ({})", e.what()),
                    rollback_hint(outcome, kept, lost));
            if (e.code() == ExitCode::provision)
                throw Error(ExitCode::provision, e.what(), rollback_hint(outcome, kept, lost));
            throw;
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

    /// An object the plan found is gone when the run comes to use it: removed by someone else
    /// since. Not a preflight refusal: the run has begun, so exit 9 and the rollback.
    [[noreturn]] void disappeared(const std::string& what) const {
        throw Error(ExitCode::provision,
                    fmt::format("provision: {} disappeared after the plan was made (removed "
                                "outside this run of labctl at {})",
                                what, m_spec.libvirt.uri));
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

    Uploader uploader() {
        return {m_conn, m_test_driver, [this](std::string text) {
                    note(std::move(text));
                }};
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
                disappeared(fmt::format("volume '{}'", name));
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
            {{"name", xml_escape(name)}, {"capacity", std::to_string(bytes)}, {"format", "raw"}});
        StorageVolHandle v = create_volume(xml, name);
        const bool uploaded = uploader().file(v.get(), name, path, bytes, {});
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
                throw_operation_error(m_conn.get(), fmt::format("defining network '{}'", name));
            m_journal.add(fmt::format("network '{}'", name),
                          [this, name] { destroy_network(m_conn, name); });
            if (virNetworkCreate(net.get()) != 0)
                throw_operation_error(m_conn.get(), fmt::format("starting network '{}'", name));
            if (virNetworkSetAutostart(net.get(), 1) != 0)
                log::debug("network '{}': autostart not set: {}", name, take_last_error().message);
            changed("create", "network", name, fmt::format("NAT {}", m_spec.network.cidr));
            m_network = std::move(net);
            return;
        }
        m_network = m_conn.find_network(name);
        if (!m_network)
            disappeared(fmt::format("network '{}'", name));
        if (virNetworkIsActive(m_network.get()) == 0) {
            if (virNetworkCreate(m_network.get()) != 0)
                throw_operation_error(m_conn.get(), fmt::format("starting network '{}'", name));
            changed("start", "network", name);
        }
    }

    void pool() {
        const std::string& name = m_spec.libvirt.pool;
        if (action(ResourceKind::pool, name) == PlanAction::create) {
            const std::string xml = templates::render(
                templates::load("libvirt/pool.xml"),
                {{"name", xml_escape(name)}, {"path", xml_escape(m_spec.libvirt.pool_path)}});
            StoragePoolHandle p(virStoragePoolDefineXML(m_conn.get(), xml.c_str(), 0));
            if (!p)
                throw_operation_error(m_conn.get(),
                                      fmt::format("defining storage pool '{}'", name));
            m_journal.add(fmt::format("storage pool '{}'", name), [this, name] {
                if (auto h = m_conn.find_pool(name)) {
                    if (virStoragePoolIsActive(h.get()) == 1)
                        virStoragePoolDestroy(h.get());
                    if (virStoragePoolUndefine(h.get()) != 0)
                        throw_operation_error(m_conn.get(),
                                              fmt::format("undefining storage pool '{}'", name));
                }
            });
            if (virStoragePoolBuild(p.get(), 0) != 0)
                throw_operation_error(m_conn.get(), fmt::format("building storage pool '{}' at {}",
                                                                name, m_spec.libvirt.pool_path));
            if (virStoragePoolCreate(p.get(), 0) != 0)
                throw_operation_error(m_conn.get(),
                                      fmt::format("starting storage pool '{}'", name));
            if (virStoragePoolSetAutostart(p.get(), 1) != 0)
                log::debug("pool '{}': autostart not set: {}", name, take_last_error().message);
            changed("create", "pool", name,
                    fmt::format("dir pool at {}", m_spec.libvirt.pool_path));
            m_pool = std::move(p);
            return;
        }
        m_pool = m_conn.find_pool(name);
        if (!m_pool)
            disappeared(fmt::format("storage pool '{}'", name));
        if (virStoragePoolIsActive(m_pool.get()) == 0) {
            if (virStoragePoolCreate(m_pool.get(), 0) != 0)
                throw_operation_error(m_conn.get(),
                                      fmt::format("starting storage pool '{}'", name));
            changed("start", "pool", name);
        }
    }

    void base_volume() {
        const std::string name = base_volume_name(m_spec.image);
        if (name.empty())
            throw usage_error("lab.yaml names no image", "set image.path to a cloud image");
        const std::string marker = upload_marker_path(m_spec, name);
        if (action(ResourceKind::base_volume, name) != PlanAction::create) {
            m_base = Connection::find_volume(m_pool.get(), name);
            if (!m_base)
                disappeared(fmt::format("volume '{}'", name));
            if (!upload_unfinished(marker)) {
                check_disk_sizes(m_spec, volume_capacity(m_base.get()));
                return;
            }
            // A run cut off mid-upload (libvirt lost, labctl killed) left a volume that looks
            // whole to libvirt: it is never trusted, but uploaded again.
            log::warn("volume '{}': an earlier upload did not finish ({}): uploading it again",
                      name, marker);
            m_base.reset();
            delete_volume(m_pool.get(), name);
        }
        const std::string path = base_image_file(m_spec.image, m_options);
        const std::uint64_t virtual_size = image_virtual_size(path, m_spec.image.format);
        // Without image.sha256 a qcow2 file cut short is refused by its own metadata before a
        // volume exists; with it, the digest of the streamed bytes decides (and the journal
        // removes the volume on a mismatch).
        if (m_spec.image.sha256.empty())
            check_image_complete(path, m_spec.image.format);
        check_disk_sizes(m_spec, virtual_size);
        const auto bytes = static_cast<std::uint64_t>(fs::file_size(path));
        const std::string xml =
            templates::render(templates::load("libvirt/base-volume.xml"),
                              {{"name", xml_escape(name)},
                               {"capacity", std::to_string(std::max(bytes, virtual_size))},
                               {"format", xml_escape(m_spec.image.format)}});
        // The marker says "this volume's contents are not complete" until the stream finished,
        // to the next provision and to down, also when this process cannot roll back.
        mark_upload_unfinished(marker, m_spec.libvirt.uri);
        m_base = create_volume(xml, name, [marker] { clear_upload_marker(marker); });
        // The digest is taken from the bytes the stream sends (read once): a mismatch aborts the
        // upload and the journal removes the volume.
        const bool uploaded = uploader().file(m_base.get(), name, path, bytes, m_spec.image.sha256);
        clear_upload_marker(marker);
        changed("create", "volume", name,
                fmt::format("base image, {} {}", config::format_size(bytes),
                            uploaded ? "uploaded" : "(contents not uploaded: test driver)"));
    }

    /// Creates the volume; the journal deletes it on failure, then runs `after_delete`.
    StorageVolHandle create_volume(const std::string& xml, const std::string& name,
                                   std::function<void()> after_delete = {}) {
        StorageVolHandle v(virStorageVolCreateXML(m_pool.get(), xml.c_str(), 0));
        if (!v) {
            const auto e = take_last_error();
            if (after_delete)
                after_delete();
            throw operation_error(
                m_conn.get(),
                fmt::format("creating volume '{}' in pool '{}'", name, m_spec.libvirt.pool), e);
        }
        m_journal.add(fmt::format("volume '{}'", name), [this, name, after_delete] {
            delete_volume(m_pool.get(), name);
            if (after_delete)
                after_delete();
        });
        return v;
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
        m_domain_type = resolve_domain_type(m_spec, m_conn, m_test_driver);
        m_authorized_key = read_authorized_key(m_spec);
        const std::size_t n = m_spec.vms.size();
        m_result.vms.resize(n);
        // A VM that fails sets m_cancelled: the other VMs' waits stop at their next poll.
        parallel_for(
            n, static_cast<std::size_t>(std::max(1, m_options.parallel)),
            [this](std::size_t i) { vm(i); }, m_cancel);
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
            const auto snapshots = destroy_domain_and_snapshots(m_conn, dom_name, m_spec.project);
            delete_volume(m_pool.get(), seed_volume_name(m_spec.project, vm.name));
            changed("delete", "domain", dom_name, "spec changed: replaced");
            for (const auto& s : snapshots)
                changed("delete", "snapshot", s,
                        fmt::format("of domain '{}': it went with the replaced VM", dom_name));
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
            uploader().bytes(seed.get(), seed_name, iso);
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
                throw_operation_error(m_conn.get(), fmt::format("defining domain '{}'", dom_name));
            m_journal.add(fmt::format("domain '{}'", dom_name),
                          [this, dom_name] { destroy_domain(m_conn, dom_name); });
            changed("create", "domain", dom_name,
                    fmt::format("{} vCPU, {}, {}", vm.cpus, config::format_size(vm.memory_bytes),
                                m_domain_type));
        }
        step(fmt::format("start:{}", vm.name));
        if (virDomainIsActive(dom.get()) == 0) {
            if (virDomainCreate(dom.get()) != 0)
                throw_operation_error(m_conn.get(), fmt::format("starting domain '{}'", dom_name));
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
        WaitTarget target = wait_target(m_spec, vm);
        target.strict = m_options.strict;
        target.cancelled = m_cancel;
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
                      [this, mac, ip, name, net] {
                          const std::lock_guard l(m_network_mutex);
                          // Looked up again: a network removed meanwhile took its hosts along.
                          if (const NetworkHandle n = m_conn.find_network(net))
                              remove_host_entries(n.get(), mac, ip, name);
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
    std::atomic<bool>* m_cancel;          ///< m_cancelled, or the lab's flag across its hosts
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

struct HostProvisioning::Impl {
    Impl(const config::LabSpec& spec, LibvirtSession& session, const ProvisionOptions& options)
        : provisioner(spec, session, options) {}
    Provisioner provisioner;
};

HostProvisioning::HostProvisioning(const config::LabSpec& host_view, LibvirtSession& session,
                                   const ProvisionOptions& options)
    : m_impl(std::make_unique<Impl>(host_view, session, options)) {}
HostProvisioning::~HostProvisioning() = default;

ProvisionResult HostProvisioning::run() {
    return m_impl->provisioner.run();
}

Journal::Outcome HostProvisioning::undo() {
    return m_impl->provisioner.undo();
}

ProvisionResult provision(const config::LabSpec& spec, const ProvisionOptions& options) {
    auto session = LibvirtSession::open(spec.libvirt.uri);
    return provision(spec, session, options);
}

} // namespace labctl::provision
