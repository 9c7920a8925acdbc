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
#include <labctl/provision/vm_change.hpp>
#include <labctl/remote/known_hosts.hpp>

#include "journal.hpp"
#include "libvirt.hpp"
#include "lv_objects.hpp"
#include "provision_parts.hpp"
#include "vm_update.hpp"

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
        m_existing = inspect_connection(m_conn);
        const auto routes = is_local_libvirt_uri(m_spec.libvirt.uri) ? read_host_routes()
                                                                     : std::vector<HostRoute>{};
        m_plan = plan_against(m_spec, m_existing, routes);
        for (const auto& item : m_plan.items)
            m_actions[{item.kind, item.name}] = item.action;
        check_forward_ports(m_spec, m_existing);
        if (m_options.approve && !m_plan.disruptive().empty())
            m_options.approve(m_plan);
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
            m_network = create_network(m_conn, m_spec, m_journal);
            changed("create", "network", name, fmt::format("NAT {}", m_spec.network.cidr));
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
            m_pool = create_pool(m_conn, m_spec, m_journal);
            changed("create", "pool", name,
                    fmt::format("dir pool at {}", m_spec.libvirt.pool_path));
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
                for (const auto& snap :
                     destroy_domain_and_snapshots(m_conn, item.name, m_spec.project))
                    changed("delete", "snapshot", snap,
                            fmt::format("of domain '{}': it went with the VM", item.name));
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
        if (disk && replace_domain) {
            delete_volume(m_pool.get(), overlay);
            disk.reset();
        }
        // Grown in place (plan refused a smaller disk): the guest's file system after the wait.
        const bool grown = disk && grow_overlay(vm, dom_name, disk.get());
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
        if (dom && action(ResourceKind::domain, dom_name) == PlanAction::update)
            update_domain(vm, dom.get(), disk.get(), seed.get());
        if (!dom) {
            const std::string xml =
                domain_xml(m_spec, vm, m_domain_type, take_string(virStorageVolGetPath(disk.get())),
                           take_string(virStorageVolGetPath(seed.get())), boot_paths());
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

        if (!m_options.wait) {
            if (grown)
                note(fmt::format("VM '{}': its disk grew; its file system grows when provision "
                                 "waits for the VM",
                                 vm.name));
            return;
        }
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
        const VmDiff diff = compare_vm(m_spec, vm, m_existing);
        if (grown || (diff.change == VmChange::resize && diff.from.disk_bytes < vm.disk_bytes)) {
            // Also a disk grown by an earlier run whose file system step failed.
            step(fmt::format("grow:{}", vm.name));
            remote::ConnectOptions ssh = target.ssh;
            if (!target.address_known)
                ssh.endpoint.host = w.ip;
            Change c = finish_disk_growth(m_conn, dom.get(), m_spec, vm, ssh, m_cancel);
            changed(std::move(c.action), std::move(c.kind), std::move(c.name), std::move(c.detail));
        }
    }

    BootPaths boot_paths() const {
        if (!m_kernel || !m_initrd)
            return {};
        return {take_string(virStorageVolGetPath(m_kernel.get())),
                take_string(virStorageVolGetPath(m_initrd.get()))};
    }

    /// Grows the overlay to lab.yaml's size when it is smaller; true when it did.
    bool grow_overlay(const config::VmSpec& vm, const std::string& dom_name,
                      virStorageVolPtr disk) {
        const std::uint64_t capacity = volume_capacity(disk);
        if (capacity >= vm.disk_bytes)
            return false;
        const std::string name = overlay_volume_name(m_spec.project, vm.name);
        const DomainHandle dom = m_conn.find_domain(dom_name);
        grow_disk(m_conn, dom.get(), "vda", disk, name, vm.disk_bytes);
        changed("update", "volume", name,
                fmt::format("capacity {} -> {}: grown in place, its data kept",
                            config::format_size(capacity), config::format_size(vm.disk_bytes)));
        return true;
    }

    /// New cpus or memory: the domain redefined under its UUID (disk, seed and snapshots stay)
    /// and, when running, shut down so that the start step below starts it with them. On a
    /// later failure the journal puts the old definition back.
    void update_domain(const config::VmSpec& vm, virDomainPtr dom, virStorageVolPtr disk,
                       virStorageVolPtr seed) {
        const VmDiff diff = compare_vm(m_spec, vm, m_existing);
        // A disk that grows is recorded once the guest's file system has grown too.
        const VmSizes recorded{diff.to.cpus, diff.to.memory_bytes,
                               std::min(diff.from.disk_bytes, vm.disk_bytes)};
        const std::string how =
            redefine_and_stop(m_conn, dom,
                              domain_xml(m_spec, with_sizes(vm, recorded), m_domain_type,
                                         take_string(virStorageVolGetPath(disk)),
                                         take_string(virStorageVolGetPath(seed)), boot_paths()),
                              m_journal, m_options.deadlines.shutdown, m_cancel);
        changed("update", "domain", domain_name(m_spec.project, vm.name),
                fmt::format("{}: {}", diff.cpus_memory_text(), how));
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
    Inventory m_existing;
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
