// What depends on several values: defaults derived from others, paths resolved by where they came
// from, and the checks that span sections (pins, target VM, allow_users, addresses, forwards, key).

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>

#include <labctl/config/suggest.hpp>

#include "loader_impl.hpp"

namespace fs = std::filesystem;

namespace labctl::config::detail {

namespace {

constexpr std::uint32_t k_first_assigned = 10; ///< VMs without ip get .10, .11, ... in order

std::string expand_home(const std::string& p) {
    if (p == "~" || p.rfind("~/", 0) == 0) {
        if (const char* home = std::getenv("HOME"); home && *home)
            return std::string(home) + p.substr(1);
    }
    return p;
}

std::string resolve_path(const std::string& p, const fs::path& base) {
    fs::path path = expand_home(p);
    if (path.is_relative())
        path = base / path;
    return path.lexically_normal().string();
}

} // namespace

void Loader::finish() {
    auto& s = m_spec;
    if (m_project_missing && !given("project"))
        m_sink.error(m_sink.whole_file(), "missing required key 'project'", k_project_hint);
    if (!given("network.name") && !s.project.empty() && !check_project("project", s.project))
        s.network.name = s.project + "-net";

    m_key_as_given = s.ssh.private_key;
    resolve("image.path", s.image.path);
    resolve("image.kernel", s.image.kernel);
    resolve("image.initrd", s.image.initrd);
    if (!s.image.kernel.empty() && s.image.cmdline.empty())
        s.image.cmdline = k_default_cmdline;
    resolve("ssh.private_key", s.ssh.private_key);
    resolve("ssh.known_hosts", s.ssh.known_hosts);
    if (s.ssh.jump_key.rfind("~/", 0) == 0)
        if (const char* home = std::getenv("HOME"))
            s.ssh.jump_key = std::string(home) + s.ssh.jump_key.substr(1);
    resolve("ssh.jump_key", s.ssh.jump_key);
    resolve("deploy.stack_dir", s.deploy.stack_dir);

    if (!m_checks_given)
        for (const auto& c : known_checks())
            if (c != "nginx.resilience")
                s.verify.checks.push_back(c);
    for (const auto& [name, where] : m_deadline_where)
        if (std::find(s.verify.checks.begin(), s.verify.checks.end(), name) ==
            s.verify.checks.end())
            m_sink.warning(where,
                           fmt::format("verify.deadlines sets a deadline for '{}', which "
                                       "verify.checks does not run",
                                       name),
                           "add it to verify.checks, or delete the deadline");

    finish_pins();
    finish_hosts();
    finish_target_vm();
    finish_allow_users();
    finish_network();
    finish_forwards();
    check_key();
}

void Loader::resolve(const std::string& field, std::string& path) {
    if (path.empty())
        return;
    const auto src = source_of(field);
    const bool from_outside = src.origin == Origin::environment || src.origin == Origin::flag;
    path = resolve_path(path, from_outside ? fs::current_path() : m_base);
}

// deploy.pins names a file of the stack: <stack_dir>/pins/<name>.env.
void Loader::finish_pins() {
    const auto& d = m_spec.deploy;
    if (d.pins.empty() || m_bad.count("deploy.pins"))
        return;
    const fs::path dir = fs::path(d.stack_dir) / "pins";
    std::error_code ec;
    if (fs::is_regular_file(dir / (d.pins + ".env"), ec))
        return;
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir, ec))
        if (entry.path().extension() == ".env")
            names.push_back(entry.path().stem().string());
    std::sort(names.begin(), names.end());
    std::string hint =
        names.empty()
            ? fmt::format("{} has no pin sets: delete deploy.pins", dir.string())
            : fmt::format("the pin sets of {} are: {}", d.stack_dir, fmt::join(names, ", "));
    if (const auto guess = did_you_mean(d.pins, names))
        hint = fmt::format("did you mean '{}'?", *guess);
    m_sink.error(
        source_of("deploy.pins").where,
        fmt::format("deploy.pins '{}': there is no {}", d.pins, (dir / (d.pins + ".env")).string()),
        hint);
}

// The hosts the VMs run on: hosts: as written, with the libvirt section's values (after the
// environment and flags) for what an entry leaves out; without hosts:, the libvirt section is the
// one host. Every VM is placed on a known host (default: the first).
void Loader::finish_hosts() {
    auto& s = m_spec;
    s.hosts.clear();
    if (!m_hosts_given) {
        HostSpec h;
        h.name = k_default_host;
        h.libvirt = s.libvirt;
        h.jump = s.ssh.jump;
        h.where = source_of("libvirt.uri").where;
        s.hosts.push_back(std::move(h));
    } else {
        if (given("libvirt.uri")) {
            const auto src = source_of("libvirt.uri");
            m_sink.error(src.where,
                         src.origin == Origin::environment
                             ? "LABCTL_LIBVIRT_URI is set, but lab.yaml names its libvirt hosts "
                               "under 'hosts'"
                             : "libvirt.uri and hosts both say where the VMs run",
                         "give each host its uri under 'hosts' (libvirt: keeps the defaults of "
                         "pool, pool_path and domain_type)");
        }
        std::map<std::string, std::string> uris; // uri -> host
        for (auto& entry : m_hosts) {
            auto& h = entry.spec;
            if (!entry.has_pool)
                h.libvirt.pool = s.libvirt.pool;
            if (!entry.has_pool_path)
                h.libvirt.pool_path = s.libvirt.pool_path;
            if (!entry.has_domain_type)
                h.libvirt.domain_type = s.libvirt.domain_type;
            if (!entry.has_jump)
                h.jump = s.ssh.jump;
            if (entry.valid) {
                if (const auto [it, fresh] = uris.emplace(h.libvirt.uri, h.name); !fresh)
                    m_sink.error(entry.uri_where,
                                 fmt::format("hosts.{}.uri '{}' is also the uri of host '{}'",
                                             h.name, h.libvirt.uri, it->second),
                                 "two hosts on one libvirt would fight over the lab's network "
                                 "and volumes: give each host its own libvirt");
            }
            s.hosts.push_back(h);
        }
        // The lab's first host (for the libvirt.* views of code that knows one host).
        if (!s.hosts.empty())
            s.libvirt = s.hosts.front().libvirt;
    }
    std::vector<std::string> names;
    for (const auto& h : s.hosts)
        names.push_back(h.name);
    for (std::size_t i = 0; i < s.vms.size(); ++i) {
        auto& vm = s.vms[i];
        if (vm.host.empty()) {
            if (!s.hosts.empty())
                vm.host = s.hosts.front().name;
            continue;
        }
        if (!m_hosts_given) {
            m_sink.error(m_vm_facts[i].host_where,
                         fmt::format("vms[{}].host '{}': lab.yaml names no hosts", i, vm.host),
                         "add 'hosts:' with that host and its uri, or delete the line");
            vm.host = names.front();
        } else if (!s.find_host(vm.host)) {
            std::string hint = fmt::format("the hosts are: {}", fmt::join(names, ", "));
            if (const auto guess = did_you_mean(vm.host, names))
                hint = fmt::format("did you mean '{}'?", *guess);
            m_sink.error(m_vm_facts[i].host_where,
                         fmt::format("vms[{}].host '{}' is not one of the hosts", i, vm.host),
                         hint);
            if (!names.empty())
                vm.host = names.front();
        }
    }
}

void Loader::finish_target_vm() {
    auto& s = m_spec;
    std::vector<std::string> names;
    for (std::size_t i = 0; i < s.vms.size(); ++i)
        if (m_vm_facts[i].name_valid)
            names.push_back(s.vms[i].name);
    s.deploy.target_vms.clear();
    if (given("deploy.target_vm")) {
        if (names.empty() ||
            std::find(names.begin(), names.end(), s.deploy.target_vm) != names.end()) {
            s.deploy.target_vms = {s.deploy.target_vm};
            return;
        }
        std::string hint = fmt::format("the VMs are: {}", fmt::join(names, ", "));
        if (const auto guess = did_you_mean(s.deploy.target_vm, names))
            hint = fmt::format("did you mean '{}'?", *guess);
        m_sink.error(source_of("deploy.target_vm").where,
                     fmt::format("deploy.target_vm '{}' is not one of the VMs", s.deploy.target_vm),
                     hint);
        return;
    }
    for (const auto& vm : s.vms)
        if (std::find(vm.roles.begin(), vm.roles.end(), s.deploy.role) != vm.roles.end())
            s.deploy.target_vms.push_back(vm.name);
    if (s.deploy.target_vms.empty()) {
        if (given("deploy.role") && !s.vms.empty())
            m_sink.warning(source_of("deploy.role").where,
                           fmt::format("no VM has the role '{}': the stack goes to the first VM, "
                                       "'{}'",
                                       s.deploy.role, s.vms.front().name),
                           fmt::format("add '{}' to the roles of the VM that should run it",
                                       s.deploy.role));
        if (!s.vms.empty())
            s.deploy.target_vms.push_back(s.vms.front().name);
    }
    if (!s.deploy.target_vms.empty())
        s.deploy.target_vm = s.deploy.target_vms.front();
}

void Loader::finish_allow_users() {
    auto& h = m_spec.hardening;
    const std::string& user = m_spec.ssh.user;
    const bool listed =
        std::find(h.allow_users.begin(), h.allow_users.end(), user) != h.allow_users.end();
    if (listed || m_bad.count("ssh.user"))
        return; // a bad ssh.user is reported already: do not blame allow_users for it
    if (given("hardening.allow_users") && !h.allow_users.empty())
        m_sink.error(source_of("hardening.allow_users").where,
                     fmt::format("hardening.allow_users must contain the ssh user '{}' or "
                                 "labctl would lock itself out",
                                 user),
                     fmt::format("add '{}' to the list, or delete allow_users to allow only "
                                 "'{}'",
                                 user, user));
    h.allow_users.push_back(user);
}

void Loader::finish_network() {
    auto& s = m_spec;
    if (m_bad.count("network.cidr"))
        return;
    const auto net = parse_cidr(s.network.cidr);
    if (!net)
        return;
    const SourceLocation cidr_where = source_of("network.cidr").where;
    if (s.network.mode == "user") {
        finish_user_network(*net, cidr_where);
        return;
    }
    const Ipv4Network libvirt_default{0xC0A87A00, 24}; // 192.168.122.0/24
    const auto overlaps = [](const Ipv4Network& a, const Ipv4Network& b) {
        return a.contains(b.address) || b.contains(a.address);
    };
    if (s.network.mode == "nat" && overlaps(*net, libvirt_default))
        m_sink.warning(cidr_where,
                       fmt::format("network.cidr {} overlaps libvirt's 'default' network "
                                   "192.168.122.0/24",
                                   net->to_string()),
                       "both networks cannot be active at once; pick another private range, "
                       "e.g. 10.66.77.0/24");
    const std::vector<Ipv4Network> k_private{{0x0A000000, 8}, {0xAC100000, 12}, {0xC0A80000, 16}};
    if (std::none_of(k_private.begin(), k_private.end(), [&](const Ipv4Network& p) {
            return p.contains(net->address) && net->prefix >= p.prefix;
        }))
        m_sink.warning(
            cidr_where,
            fmt::format("network.cidr {} is not a private (RFC 1918) range", net->to_string()),
            "the lab would hide real hosts with those addresses; use 10.0.0.0/8, "
            "172.16.0.0/12 or 192.168.0.0/16");

    const std::string range_hint =
        fmt::format("pick an address from {} to {}, or leave ip out to have one assigned",
                    format_ipv4(net->gateway() + 1), format_ipv4(net->last_host()));
    std::map<std::uint32_t, std::size_t> used;
    for (std::size_t i = 0; i < s.vms.size(); ++i) {
        const auto& f = m_vm_facts[i];
        if (!f.ip)
            continue;
        const std::uint32_t ip = *f.ip;
        const std::string label = fmt::format("vms[{}].ip {}", i, s.vms[i].ip);
        if (!net->contains(ip))
            m_sink.error(f.ip_where,
                         fmt::format("{} is outside network.cidr {}", label, net->to_string()),
                         range_hint);
        else if (ip == net->address)
            m_sink.error(f.ip_where,
                         fmt::format("{} is the network address of {}", label, net->to_string()),
                         range_hint);
        else if (ip == net->gateway())
            m_sink.error(f.ip_where,
                         fmt::format("{} is the gateway of {} (the host's side of the "
                                     "network)",
                                     label, net->to_string()),
                         range_hint);
        else if (ip == net->broadcast())
            m_sink.error(f.ip_where,
                         fmt::format("{} is the broadcast address of {}", label, net->to_string()),
                         range_hint);
        else if (const auto it = used.find(ip); it != used.end())
            m_sink.error(f.ip_where,
                         fmt::format("{} is already used by vms[{}] on line {}", label, it->second,
                                     m_vm_facts[it->second].ip_where.line),
                         "give every VM its own address, or leave ip out to have one "
                         "assigned");
        else
            used.emplace(ip, i);
    }
    // From .10 on, so that low addresses stay free for hand-picked ones; a network too small
    // for that starts right after the gateway.
    std::uint32_t next = net->address + k_first_assigned;
    if (next > net->last_host())
        next = net->gateway() + 1;
    for (std::size_t i = 0; i < s.vms.size(); ++i) {
        if (m_vm_facts[i].ip_given)
            continue;
        while (next <= net->last_host() && used.count(next))
            ++next;
        if (next > net->last_host()) {
            m_sink.error(s.vms[i].where,
                         fmt::format("no free address left in network.cidr {} for vms[{}]",
                                     net->to_string(), i),
                         "use a larger network (a smaller prefix), or give the VM an ip");
            return;
        }
        s.vms[i].ip = format_ipv4(next);
        used.emplace(next, i);
    }
}

/// mode user: every VM sits alone on QEMU's SLIRP network and gets its fixed address; the
/// host reaches it only through network.forwards on 127.0.0.1.
void Loader::finish_user_network(const Ipv4Network& net, const SourceLocation& cidr_where) {
    auto& s = m_spec;
    if (s.vms.size() > 1)
        m_sink.warning(source_of("network.mode").where,
                       fmt::format("network.mode 'user' gives every VM its own private "
                                   "network: the {} VMs cannot reach each other",
                                   s.vms.size()),
                       "use 'mode: nat' when the VMs must talk to each other");
    if (given("network.cidr") && net.to_string() != k_user_cidr)
        m_sink.warning(cidr_where,
                       fmt::format("network.cidr {} is not used with network.mode user: "
                                   "every VM gets {}/24 on QEMU's own network",
                                   net.to_string(), k_user_guest_ip),
                       "delete network.cidr; the VMs are reached through network.forwards "
                       "on 127.0.0.1");
    for (std::size_t i = 0; i < s.vms.size(); ++i) {
        const auto& f = m_vm_facts[i];
        if (f.ip_given && s.vms[i].ip != k_user_guest_ip && !s.vms[i].ip.empty())
            m_sink.warning(f.ip_where,
                           fmt::format("vms[{}].ip {} is not used with network.mode user: "
                                       "the VM's address is {}",
                                       i, s.vms[i].ip, k_user_guest_ip),
                           "delete the ip line");
        s.vms[i].ip = k_user_guest_ip;
    }
}

/// Forwards make sense only in mode user; there the guest's SSH port is always forwarded, and
/// every VM gets its own copy of the list with host ports shifted by its index.
void Loader::finish_forwards() {
    auto& s = m_spec;
    auto& fw = s.network.forwards;
    if (s.network.mode != "user") {
        if (!fw.empty())
            m_sink.error(
                source_of("network.forwards").where,
                fmt::format("network.forwards needs network.mode user (it is {})", s.network.mode),
                "with mode nat the VMs are reached at their own addresses: set "
                "'mode: user' to forward ports on 127.0.0.1, or delete forwards");
        fw.clear();
        return;
    }
    const auto forwarded = [&](int guest) {
        return std::any_of(fw.begin(), fw.end(),
                           [guest](const PortForward& f) { return f.guest == guest; });
    };
    const auto host_used = [&](int host) {
        return std::any_of(fw.begin(), fw.end(),
                           [host](const PortForward& f) { return f.host == host; });
    };
    if (!forwarded(s.ssh.port)) {
        // Spaced by the number of VMs so that the shifted copies stay free too.
        int host = k_default_ssh_host_port;
        const auto n = static_cast<int>(std::max<std::size_t>(s.vms.size(), 1));
        const auto clear = [&](int h) {
            for (int k = 0; k < n; ++k)
                for (const auto& f : fw)
                    for (int j = 0; j < n; ++j)
                        if (f.host + j == h + k)
                            return false;
            return true;
        };
        while (host + n - 1 <= 65535 && (host_used(host) || !clear(host)))
            ++host;
        fw.insert(fw.begin(), PortForward{s.ssh.port, host, source_of("network.mode").where});
    }
    std::map<int, std::pair<std::size_t, int>> bound; // host port -> (vm, guest port)
    for (std::size_t i = 0; i < s.vms.size(); ++i) {
        auto& vm = s.vms[i];
        vm.forwards.clear();
        for (const auto& f : fw) {
            const int host = f.host + static_cast<int>(i);
            if (host > 65535) {
                m_sink.error(f.where.line > 0 ? f.where : vm.where,
                             fmt::format("vms[{}] would forward host port {} (network.forwards "
                                         "host {} + {}), above 65535",
                                         i, host, f.host, i),
                             "the n-th VM binds every host port + n: lower the host ports");
                continue;
            }
            if (const auto it = bound.find(host); it != bound.end()) {
                m_sink.error(vm.where,
                             fmt::format("vms[{}] would forward 127.0.0.1:{} to guest port "
                                         "{}, which vms[{}] forwards to guest port {}",
                                         i, host, f.guest, it->second.first, it->second.second),
                             fmt::format("the n-th VM binds every host port + n: space the "
                                         "host ports of network.forwards at least {} apart",
                                         s.vms.size()));
                continue;
            }
            bound.emplace(host, std::pair{i, f.guest});
            vm.forwards.push_back({f.guest, host, f.where});
        }
    }
}

void Loader::check_key() {
    const auto& key = m_spec.ssh.private_key;
    if (key.empty())
        return;
    const Source src = source_of("ssh.private_key");
    const std::string shown = fmt::format("ssh.private_key '{}'{}", m_key_as_given,
                                          src.origin == Origin::defaulted ? " (the default)" : "");
    struct stat st {};
    if (::stat(key.c_str(), &st) != 0) {
        const int err = errno;
        if (err == ENOENT || err == ENOTDIR)
            m_sink.report(m_options.require_key ? Severity::error : Severity::warning, src.where,
                          fmt::format("{} does not exist", shown),
                          "run 'labctl init' to create a key pair");
        else
            m_sink.error(src.where,
                         fmt::format("{} cannot be read: {}", shown, std::strerror(err)));
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        m_sink.error(src.where, fmt::format("{} is not a file", shown),
                     "point ssh.private_key at an OpenSSH private key, e.g. "
                     ".labctl/id_ed25519");
        return;
    }
    const unsigned mode = static_cast<unsigned>(st.st_mode) & 07777U;
    if ((mode & 077U) != 0)
        m_sink.error(src.where,
                     fmt::format("{} has mode {:04o}: group or others can access it", shown, mode),
                     fmt::format("chmod 600 {}", key));
    else if (::access(key.c_str(), R_OK) != 0)
        m_sink.error(src.where, fmt::format("{} cannot be read: {}", shown, std::strerror(errno)),
                     "the user running labctl must own it (chmod 600)");
    std::error_code ec;
    if (!fs::exists(key + ".pub", ec))
        m_sink.warning(src.where, fmt::format("{} has no public key next to it", shown),
                       fmt::format("recreate it: ssh-keygen -y -f {} > {}.pub", key, key));
}

} // namespace labctl::config::detail
