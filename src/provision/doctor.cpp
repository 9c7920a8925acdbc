#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <labctl/config/loader.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/process.hpp>
#include <labctl/provision/doctor.hpp>
#include <labctl/provision/naming.hpp>
#include <labctl/provision/network.hpp>
#include <labctl/remote/session.hpp>

#include "format.hpp"

namespace labctl::provision {

std::string_view status_name(CheckStatus status) {
    switch (status) {
    case CheckStatus::ok:
        return "ok";
    case CheckStatus::warn:
        return "warn";
    case CheckStatus::fail:
        return "fail";
    case CheckStatus::skip:
        return "skip";
    }
    return "?";
}

std::vector<std::string> DoctorReport::failed_required() const {
    std::vector<std::string> out;
    for (const auto& c : checks)
        if (c.required && c.status == CheckStatus::fail)
            out.push_back(c.host.empty() ? c.name : fmt::format("{} ({})", c.name, c.host));
    return out;
}

std::size_t DoctorReport::count(CheckStatus status) const {
    return static_cast<std::size_t>(
        std::count_if(checks.begin(), checks.end(),
                      [status](const DoctorCheck& c) { return c.status == status; }));
}

DoctorCheck check_kvm(const KvmProbe& probe, const std::string& domain_type) {
    DoctorCheck c{"kvm", CheckStatus::ok, domain_type == "kvm", probe.detail, {}};
    if (probe.usable) {
        if (domain_type == "qemu")
            c.detail += "; libvirt.domain_type is qemu, so it is not used";
        return c;
    }
    if (probe.guests_broken) {
        // /dev/kvm works, guests do not: module loading or permissions will not fix that.
        c.status = domain_type == "kvm" ? CheckStatus::fail : CheckStatus::warn;
        if (domain_type != "kvm")
            c.detail += "; domain_type auto falls back to qemu (TCG emulation): slow but working";
        c.hint = domain_type == "kvm"
                     ? "KVM guests do not run on this host (nested virtualisation?): set "
                       "libvirt.domain_type: qemu or auto"
                     : "KVM guests do not run on this host (nested virtualisation?); nothing to "
                       "do unless you need full speed";
        return c;
    }
    if (domain_type == "kvm") {
        c.status = CheckStatus::fail;
        c.hint = "load the kvm_intel or kvm_amd module and give this user access to /dev/kvm "
                 "(group kvm), or set libvirt.domain_type: qemu (emulation, slow)";
    } else {
        c.status = CheckStatus::warn;
        c.detail += "; VMs run emulated (TCG): slow but working";
        c.hint = "load the kvm_intel or kvm_amd module and give this user access to /dev/kvm "
                 "(group kvm) for full speed";
    }
    return c;
}

DoctorCheck check_tool(const std::string& program, const std::string& package) {
    DoctorCheck c{"tools." + program, CheckStatus::ok, true, {}, {}};
    if (const auto path = find_program(program)) {
        c.detail = *path;
    } else {
        c.status = CheckStatus::fail;
        c.detail = fmt::format("{} is not on PATH", program);
        c.hint = fmt::format("install it: apt-get install {}", package);
    }
    return c;
}

DoctorCheck check_ssh_key(const std::string& private_key) {
    DoctorCheck c{"ssh.key", CheckStatus::ok, true, {}, {}};
    struct stat st {};
    if (::stat(private_key.c_str(), &st) != 0) {
        const int err = errno;
        if (err == ENOENT || err == ENOTDIR) {
            c.status = CheckStatus::warn;
            c.detail = fmt::format("{} does not exist", private_key);
            c.hint = "run 'labctl init' to create a key pair";
        } else {
            c.status = CheckStatus::fail;
            c.detail = fmt::format("{} cannot be read: {}", private_key, std::strerror(err));
        }
        return c;
    }
    if (!S_ISREG(st.st_mode)) {
        c.status = CheckStatus::fail;
        c.detail = fmt::format("{} is not a file", private_key);
        c.hint = "point ssh.private_key at an OpenSSH private key";
        return c;
    }
    const unsigned mode = static_cast<unsigned>(st.st_mode) & 07777U;
    if ((mode & 077U) != 0) {
        c.status = CheckStatus::fail;
        c.detail =
            fmt::format("{} has mode {:04o}: group or others can access it", private_key, mode);
        c.hint = fmt::format("chmod 600 {}", private_key);
        return c;
    }
    std::error_code ec;
    if (!std::filesystem::exists(private_key + ".pub", ec)) {
        c.status = CheckStatus::warn;
        c.detail = fmt::format("{} (mode {:04o}) has no public key next to it", private_key, mode);
        c.hint = fmt::format("recreate it: ssh-keygen -y -f {0} > {0}.pub", private_key);
        return c;
    }
    c.detail = fmt::format("{}, mode {:04o}", private_key, mode);
    return c;
}

DoctorCheck check_free_space(const std::string& name, const std::string& where,
                             std::optional<std::uint64_t> free, std::uint64_t wanted) {
    DoctorCheck c{name, CheckStatus::ok, true, {}, {}};
    if (!free) {
        c.status = CheckStatus::skip;
        c.detail = fmt::format("cannot measure the free space at {}", where);
        return c;
    }
    c.detail = fmt::format("{} free at {}", approx_size(*free), where);
    if (wanted > 0)
        c.detail += fmt::format("; the lab's disks take up to {}", approx_size(wanted));
    if (*free < k_min_free_bytes) {
        c.status = CheckStatus::fail;
        c.hint = fmt::format("free some space: labctl needs at least {} there",
                             approx_size(k_min_free_bytes));
    } else if (*free < wanted) {
        c.status = CheckStatus::warn;
        c.hint = "the disks are thin (copy-on-write) but can grow to their full size: free space "
                 "or give the VMs smaller disks";
    }
    return c;
}

namespace {

DoctorCheck skipped(std::string name, std::string detail) {
    return {std::move(name), CheckStatus::skip, true, std::move(detail), {}};
}

/// The jump host the guests are reached through (ssh.jump): it answers, its key is pinned in the
/// lab's known_hosts and it lets labctl log in. Connecting for real is the only proof.
DoctorCheck check_jump(const config::LabSpec& spec) {
    const auto j = spec.jump_host();
    if (!j) {
        auto c = skipped("ssh.jump", spec.ssh.jump == "none"
                                         ? "ssh.jump is none: the VMs are reached directly"
                                         : "libvirt.uri is not qemu+ssh://: the VMs are reached "
                                           "directly");
        c.required = false;
        return c;
    }
    remote::ConnectOptions o;
    o.endpoint = {j->host, j->port, j->user};
    o.known_hosts = spec.ssh.known_hosts;
    o.private_key = j->private_key;
    o.use_agent = true;
    o.connect_timeout = std::chrono::seconds(10);
    o.io_timeout = std::chrono::seconds(10);
    const std::string pattern =
        j->port == 22 ? j->host : fmt::format("[{}]:{}", j->host, j->port);
    try {
        const auto session = remote::Session::connect(o);
        return {"ssh.jump",
                CheckStatus::ok,
                true,
                fmt::format("{} answers; host key {} {} pinned; logged in", o.endpoint.to_string(),
                            session.facts().hostkey_type, session.facts().host_key_fingerprint),
                {}};
    } catch (const Error& e) {
        return {"ssh.jump", CheckStatus::fail, true, e.what(),
                fmt::format("{}{}the VMs are reached through this host: pin its key after "
                            "checking it out of band, e.g. from your own known_hosts: "
                            "ssh-keygen -F '{}' | grep -v '^#' >> {}; set ssh.jump_key to a key "
                            "it accepts, or ssh.jump: none",
                            e.hint(), e.hint().empty() ? "" : "; ", pattern,
                            spec.ssh.known_hosts)};
    }
}

DoctorCheck check_pool(const config::LabSpec& spec, const Inventory& inv) {
    DoctorCheck c{"libvirt.pool", CheckStatus::ok, true, {}, {}};
    const auto& name = spec.libvirt.pool;
    if (const PoolFacts* p = inv.find_pool(name)) {
        c.detail = fmt::format("'{}': {} pool at {}", name, p->type.empty() ? "storage" : p->type,
                               p->path.empty() ? "?" : p->path);
        if (!p->active) {
            c.status = CheckStatus::warn;
            c.detail += "; inactive: provisioning starts it";
        }
        return c;
    }
    if (!spec.libvirt.pool_path.empty()) {
        c.status = CheckStatus::warn;
        c.detail = fmt::format("'{}' does not exist: it will be created at {}", name,
                               spec.libvirt.pool_path);
        return c;
    }
    c.status = CheckStatus::fail;
    c.detail = fmt::format("storage pool '{}' does not exist", name);
    c.hint = fmt::format("create it (virsh pool-define-as {0} dir --target "
                         "/var/lib/libvirt/images; virsh pool-start {0}), or set "
                         "libvirt.pool_path to have labctl create it",
                         name);
    return c;
}

DoctorCheck check_network_name(const config::LabSpec& spec, const Inventory& inv) {
    DoctorCheck c{"network.name", CheckStatus::ok, true, {}, {}};
    const auto& name = spec.network.name;
    const NetworkFacts* n = inv.find_network(name);
    if (n == nullptr) {
        c.detail = fmt::format("'{}' does not exist: it will be created", name);
        return c;
    }
    const auto wanted = config::parse_cidr(spec.network.cidr);
    const bool same_range =
        wanted &&
        std::any_of(n->subnets.begin(), n->subnets.end(), [&](const config::Ipv4Network& s) {
            return s.address == wanted->address && s.prefix == wanted->prefix;
        });
    if (!same_range) {
        c.status = CheckStatus::fail;
        c.detail = fmt::format("'{}' exists with {}, but network.cidr is {}", name,
                               n->subnets_text(), spec.network.cidr);
        c.hint = "set network.cidr to the network's range, or choose another network.name";
        return c;
    }
    if (n->labctl && n->labctl->project != spec.project) {
        c.status = CheckStatus::fail;
        c.detail = fmt::format("'{}' belongs to labctl project '{}'", name, n->labctl->project);
        c.hint = "choose another network.name for this lab";
        return c;
    }
    if (n->labctl) {
        c.detail = fmt::format("'{}' exists, created by labctl for project '{}'", name,
                               n->labctl->project);
    } else {
        c.status = CheckStatus::warn;
        c.detail = fmt::format("'{}' exists but was not created by labctl: it is used as is", name);
        c.hint = "labctl adds DHCP reservations to it and never deletes it";
    }
    if (!n->active)
        c.detail += "; inactive: provisioning starts it";
    return c;
}

DoctorCheck check_network_cidr(const config::LabSpec& spec, const Inventory* inv,
                               const std::vector<HostRoute>& routes, bool local) {
    DoctorCheck c{"network.cidr", CheckStatus::ok, true, {}, {}};
    const Inventory none;
    const auto collisions = network_collisions(spec, inv != nullptr ? *inv : none, routes);
    if (!collisions.empty()) {
        c.status = CheckStatus::fail;
        c.detail = describe_collisions(spec, collisions);
        c.hint = "choose a free private range for network.cidr, or remove the colliding network";
        return c;
    }
    std::vector<std::string> checked;
    if (inv != nullptr)
        checked.push_back(fmt::format("{} libvirt network{}", inv->networks.size(),
                                      inv->networks.size() == 1 ? "" : "s"));
    else
        checked.emplace_back("libvirt networks not checked");
    if (local)
        checked.push_back(
            fmt::format("{} host route{}", routes.size(), routes.size() == 1 ? "" : "s"));
    else
        checked.emplace_back("remote libvirt host: its routes not checked");
    c.detail = fmt::format("{} is free ({}, {})", spec.network.cidr, checked[0], checked[1]);
    return c;
}

} // namespace

DoctorCheck check_forwards(const config::LabSpec& spec, const Inventory* inv, bool local) {
    DoctorCheck c{"network.forwards", CheckStatus::ok, true, {}, {}};
    if (!local) {
        c.status = CheckStatus::skip;
        c.detail = "the libvirt host is remote: its 127.0.0.1 ports are not checked from here";
        return c;
    }
    std::vector<std::string> busy;
    std::vector<std::string> held;
    std::size_t count = 0;
    for (const auto& vm : spec.vms) {
        const DomainFacts* d =
            inv != nullptr ? inv->find_domain(domain_name(spec.project, vm.name)) : nullptr;
        const bool running =
            d != nullptr && d->active && d->labctl && d->labctl->project == spec.project;
        for (const auto& f : vm.forwards) {
            ++count;
            const auto why = loopback_port_busy(f.host);
            if (!why)
                continue;
            // The lab's own running VM holds its ports: that is not a conflict.
            if (running)
                held.push_back(std::to_string(f.host));
            else
                busy.push_back(
                    fmt::format("{} (guest {} of VM '{}': {})", f.host, f.guest, vm.name, *why));
        }
    }
    if (!busy.empty()) {
        c.status = CheckStatus::fail;
        c.detail = fmt::format("127.0.0.1 port{} in use: {}", busy.size() == 1 ? "" : "s",
                               fmt::join(busy, ", "));
        c.hint = "stop what listens there (ss -ltnp), or change the host ports in "
                 "network.forwards";
        return c;
    }
    const std::size_t free = count - held.size();
    if (free > 0 || held.empty())
        c.detail = fmt::format("{} forward{} free on 127.0.0.1", free, free == 1 ? "" : "s");
    if (!held.empty())
        c.detail += fmt::format("{}{} held by the lab's running VMs", c.detail.empty() ? "" : "; ",
                                fmt::join(held, ", "));
    return c;
}

bool is_host_check(const std::string& name) {
    return name == "kvm" || name == "ssh.jump" || name == "disk.pool" ||
           name.rfind("libvirt.", 0) == 0 || name.rfind("network.", 0) == 0;
}

DoctorReport run_doctor(const std::optional<config::LabSpec>& spec, const DoctorOptions& options) {
    DoctorReport report;
    report.uri = spec ? spec->libvirt.uri : options.uri;
    report.have_spec = spec.has_value();
    const bool local = is_local_libvirt_uri(report.uri);
    const std::string no_spec = "no lab file: lab checks skipped";
    auto& out = report.checks;

    log::debug("checking KVM");
    if (local) {
        out.push_back(check_kvm(probe_kvm(options.kvm_device),
                                spec ? spec->libvirt.domain_type : std::string("auto")));
    } else {
        auto c = skipped("kvm", "the libvirt host is remote: its KVM is not checked from here");
        c.required = false;
        out.push_back(std::move(c));
    }

    log::info("connecting to libvirt at {}", report.uri);
    std::optional<Inventory> inv;
    try {
        inv = inspect_libvirt(report.uri);
        out.push_back(
            {"libvirt.uri",
             CheckStatus::ok,
             true,
             fmt::format("{}: {} driver, libvirt {}", report.uri, inv->driver, inv->version),
             {}});
    } catch (const Error& e) {
        out.push_back({"libvirt.uri", CheckStatus::fail, true, e.what(), e.hint()});
    }
    const std::string unreachable = "libvirt is not reachable";

    if (!spec)
        out.push_back(skipped("libvirt.pool", no_spec));
    else if (!inv)
        out.push_back(skipped("libvirt.pool", unreachable));
    else
        out.push_back(check_pool(*spec, *inv));

    const auto routes = local ? read_host_routes(options.route_table) : std::vector<HostRoute>{};
    if (!spec) {
        out.push_back(skipped("network.name", no_spec));
        out.push_back(skipped("network.cidr", no_spec));
    } else if (spec->network.mode != "nat") {
        const std::string why =
            fmt::format("network.mode is {}: labctl makes no libvirt network", spec->network.mode);
        out.push_back(skipped("network.name", why));
        out.push_back(skipped("network.cidr", why));
        out.push_back(check_forwards(*spec, inv ? &*inv : nullptr, local));
    } else {
        out.push_back(inv ? check_network_name(*spec, *inv) : skipped("network.name", unreachable));
        out.push_back(check_network_cidr(*spec, inv ? &*inv : nullptr, routes, local));
    }

    for (const auto& [program, package] :
         {std::pair<std::string, std::string>{"qemu-img", "qemu-utils"},
          {"rsync", "rsync"},
          {"ssh", "openssh-client"},
          {"ssh-keygen", "openssh-client"}})
        out.push_back(check_tool(program, package));

    out.push_back(spec ? check_ssh_key(spec->ssh.private_key) : skipped("ssh.key", no_spec));
    log::debug("checking the jump host");
    out.push_back(spec ? check_jump(*spec) : skipped("ssh.jump", no_spec));

    if (!spec) {
        out.push_back(skipped("disk.pool", no_spec));
        out.push_back(skipped("disk.state", no_spec));
    } else {
        std::uint64_t wanted = 0;
        for (const auto& vm : spec->vms)
            wanted += vm.disk_bytes;
        const PoolFacts* pool = inv ? inv->find_pool(spec->libvirt.pool) : nullptr;
        if (pool != nullptr && pool->active)
            out.push_back(check_free_space("disk.pool",
                                           fmt::format("pool '{}' ({})", pool->name, pool->path),
                                           pool->available, wanted));
        else if (!spec->libvirt.pool_path.empty() && local)
            out.push_back(check_free_space("disk.pool", spec->libvirt.pool_path,
                                           free_bytes(spec->libvirt.pool_path), wanted));
        else
            out.push_back(skipped("disk.pool",
                                  pool != nullptr ? "the pool is inactive" : "no pool to measure"));
        out.push_back(
            check_free_space("disk.state", spec->state_dir(), free_bytes(spec->state_dir()), 0));
    }
    return report;
}

} // namespace labctl::provision
