#include "targets.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>

#include <labctl/core/duration.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/file.hpp>
#include <labctl/core/log.hpp>

namespace labctl::cli {

void HostOptions::add_to(CLI::App& sub, const std::string& host_help) {
    sub.add_option("--host", host, host_help)->type_name("[USER@]HOST[:PORT]");
    sub.add_option("--wait", wait, "How long to wait for SSH to answer (default 60s)")
        ->type_name("DURATION");
}

std::chrono::milliseconds HostOptions::wait_duration() const {
    const auto d = parse_duration(wait);
    if (!d)
        throw usage_error(fmt::format("--wait '{}' is not a duration", wait), "use e.g. 30s, 2m");
    return *d;
}

config::Overrides HostOptions::overrides() const {
    config::Overrides o;
    if (!host.empty())
        o.host = host;
    return o;
}

std::string Target::alias() const {
    std::string a = name;
    for (char& c : a)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-')
            c = '-';
    return a;
}

std::vector<Target> resolve_targets(const config::LabSpec& spec, const std::string& host_flag,
                                    const std::string& vm_filter) {
    if (!host_flag.empty()) {
        const auto ep = remote::parse_endpoint(host_flag, {"", spec.ssh.port, spec.ssh.user});
        // A --host that is a lab VM's own SSH address (what completion offers) is that VM: it is
        // reached as the VM is, through its host's jump.
        for (const auto& vm : spec.vms) {
            const auto at = spec.ssh_address(vm);
            if (at.host == ep.host && at.port == ep.port) {
                const auto& host = spec.host_of(vm);
                return {{host_flag, ep, spec.jump_for(host).has_value(), host.name}};
            }
        }
        return {{host_flag, ep, spec.ssh.jump != "auto" && spec.jump_host().has_value(), ""}};
    }
    // mode nat: the VM's address and ssh.port; mode user: 127.0.0.1 and the host side of the
    // VM's ssh forward, the same host:port its key is pinned under in known_hosts.
    std::vector<Target> out;
    for (const auto& vm : spec.vms) {
        if (!vm_filter.empty() && vm.name != vm_filter)
            continue;
        const auto at = spec.ssh_address(vm);
        const auto& host = spec.host_of(vm);
        out.push_back({vm.name,
                       {at.host, at.port, spec.ssh.user},
                       spec.jump_for(host).has_value(),
                       host.name});
    }
    if (out.empty())
        throw usage_error(vm_filter.empty()
                              ? "the lab has no VMs"
                              : fmt::format("no VM named '{}' in {}", vm_filter, spec.source_file),
                          "VM names are listed under vms: in lab.yaml");
    return out;
}

std::vector<Target> stack_targets(const config::LabSpec& spec, const std::string& host) {
    if (!host.empty())
        return resolve_targets(spec, host);
    std::vector<Target> targets;
    for (const auto* vm : spec.deploy_vms())
        targets.push_back(resolve_targets(spec, "", vm->name).front());
    return targets;
}

remote::ConnectOptions connect_options(const config::LabSpec& spec, const Target& target) {
    remote::ConnectOptions o;
    o.endpoint = target.endpoint;
    o.known_hosts = spec.ssh.known_hosts;
    o.private_key = spec.ssh.private_key;
    o.use_agent = false;
    if (const auto j = target_jump(spec, target))
        o.jump = remote::JumpHost{{j->host, j->port, j->user}, j->private_key, true};
    return o;
}

std::optional<config::JumpSpec> target_jump(const config::LabSpec& spec, const Target& target) {
    if (!target.via_jump)
        return std::nullopt;
    if (const config::HostSpec* host = spec.find_host(target.lab_host))
        return spec.jump_for(*host);
    return spec.jump_host();
}

std::map<std::string, std::string> vm_endpoints(const config::LabSpec& spec,
                                                const std::string& vm_name,
                                                const std::vector<std::string>& needed) {
    std::map<std::string, std::string> out;
    const config::VmSpec* vm = spec.find_vm(vm_name);
    if (vm == nullptr || !spec.user_network())
        return out;
    for (const auto& [service, guest_port] : k_service_ports) {
        if (const auto at = spec.service_address(*vm, guest_port))
            out[service] = fmt::format("http://{}:{}", at->host, at->port);
        else {
            // Port 0 never answers: the default (127.0.0.1 and the guest's port) could reach an
            // unrelated service on this host and pass a check the lab never ran.
            out[service] = "http://127.0.0.1:0";
            if (std::find(needed.begin(), needed.end(), service) != needed.end())
                log::warn("verify: guest port {} ({}) of VM '{}' is not forwarded, so its checks "
                          "fail: add '- {{guest: {}, host: <port>}}' to network.forwards",
                          guest_port, service, vm_name, guest_port);
        }
    }
    return out;
}

std::string jump_alias(const config::LabSpec& spec, const std::string& lab_host) {
    return spec.several_hosts() && !lab_host.empty() ? "labctl-jump-" + lab_host
                                                     : std::string("labctl-jump");
}

std::string write_ssh_config(const config::LabSpec& spec, const std::vector<Target>& targets) {
    std::string text = "# Written by labctl for this lab: host keys are pinned, never trusted on "
                       "first use.\n";
    // One Host entry per jump in use: "labctl-jump", or "labctl-jump-<host>" per lab host when
    // the lab has several. ssh runs the jump through this same file (-F is passed on), so the
    // jump host's key is checked against the lab's known_hosts like the guests'.
    std::map<std::string, config::JumpSpec> jumps;
    for (const auto& t : targets) {
        text += fmt::format("\nHost {}\n    HostName {}\n    Port {}\n    User {}\n"
                            "    IdentityFile {}\n    IdentitiesOnly yes\n"
                            "    UserKnownHostsFile {}\n    StrictHostKeyChecking yes\n"
                            "    HashKnownHosts no\n    ControlMaster auto\n"
                            "    ControlPath {}/cm-%C\n    ControlPersist 60s\n",
                            t.alias(), t.endpoint.host, t.endpoint.port, t.endpoint.user,
                            spec.ssh.private_key, spec.ssh.known_hosts, spec.state_dir());
        if (const auto jump = target_jump(spec, t)) {
            const std::string alias = jump_alias(spec, t.lab_host);
            text += fmt::format("    ProxyJump {}\n", alias);
            jumps.emplace(alias, *jump);
        }
    }
    for (const auto& [alias, jump] : jumps)
        text += fmt::format("\nHost {}\n    HostName {}\n    Port {}\n    User {}\n"
                            "{}    UserKnownHostsFile {}\n    StrictHostKeyChecking yes\n"
                            "    HashKnownHosts no\n",
                            alias, jump.host, jump.port, jump.user,
                            jump.private_key.empty()
                                ? std::string()
                                : fmt::format("    IdentityFile {}\n", jump.private_key),
                            spec.ssh.known_hosts);
    std::filesystem::create_directories(spec.state_dir());
    const auto path = spec.state_dir() + "/ssh_config";
    write_file_atomic(path, text, 0644);
    return path;
}

namespace {

/// "host:port", an IPv6 host bracketed.
std::string host_port(const std::string& host, int port) {
    return host.find(':') == std::string::npos ? fmt::format("{}:{}", host, port)
                                               : fmt::format("[{}]:{}", host, port);
}

/// Where the jump host reaches `guest_port` of `target`: a VM's service address (its own address,
/// or in mode user the hypervisor's 127.0.0.1 and the forwarded port), or --host's address.
std::optional<config::LabSpec::Address> address_behind_jump(const config::LabSpec& spec,
                                                            const Target& target, int guest_port) {
    if (const auto* vm = spec.find_vm(target.name)) {
        const auto ssh = spec.ssh_address(*vm);
        if (ssh.host == target.endpoint.host && ssh.port == target.endpoint.port)
            return spec.service_address(*vm, guest_port);
    }
    return config::LabSpec::Address{target.endpoint.host, guest_port};
}

} // namespace

JumpForwards open_forwards(const config::LabSpec& spec, const Target& target,
                           const std::vector<std::string>& needed) {
    JumpForwards out;
    auto options = connect_options(spec, target);
    if (!target.via_jump || !options.jump)
        return out;
    std::vector<std::string> opened;
    for (const auto& service : needed) {
        if (spec.verify.endpoints.count(service) != 0)
            continue; // the lab says where it is: labctl takes it as given
        const auto it = std::find_if(k_service_ports.begin(), k_service_ports.end(),
                                     [&](const auto& sp) { return sp.first == service; });
        if (it == k_service_ports.end())
            continue;
        // mode user and the port not forwarded: vm_endpoints already gave it port 0 and warned.
        const auto at = address_behind_jump(spec, target, it->second);
        if (!at)
            continue;
        options.endpoint = {at->host, at->port, target.endpoint.user};
        auto forward = remote::Forward::open(options);
        const auto local = fmt::format("http://127.0.0.1:{}", forward->local_port());
        opened.push_back(fmt::format("{} {} at 127.0.0.1:{}", service,
                                     host_port(at->host, at->port), forward->local_port()));
        out.m_endpoints[service] = local;
        out.m_entries.push_back({service, local, std::move(forward)});
    }
    if (!out.m_entries.empty())
        log::info("verify: {} is reached through the jump host {}: local forward{} {}", target.name,
                  out.m_entries.front().forward->via(), out.m_entries.size() == 1 ? "" : "s",
                  fmt::join(opened, ", "));
    return out;
}

void JumpForwards::annotate(std::vector<verify::CheckResult>& results) const {
    for (auto& r : results)
        for (auto& e : r.evidence)
            for (const auto& entry : m_entries) {
                const auto at = e.url.find(entry.local);
                const auto end = at + entry.local.size();
                if (at == std::string::npos ||
                    (end < e.url.size() && e.url[end] != '/' && e.url[end] != '?'))
                    continue;
                const auto& t = entry.forward->target();
                e.note += fmt::format("{}({} is {} through the jump host {})",
                                      e.note.empty() ? "" : " ", entry.local.substr(7),
                                      host_port(t.host, t.port), entry.forward->via());
                break;
            }
}

void JumpForwards::warn_failures() const {
    for (const auto& entry : m_entries)
        if (const auto why = entry.forward->failure(); !why.empty()) {
            const auto& t = entry.forward->target();
            log::warn("verify: the forward to {} ({}) through the jump host {} stopped: {}",
                      host_port(t.host, t.port), entry.service, entry.forward->via(), why);
        }
}

std::string jump_url_hint(const config::LabSpec& spec, const std::string& vm_name,
                          const std::vector<int>& guest_ports) {
    const auto* vm = spec.find_vm(vm_name);
    if (vm == nullptr || !resolve_targets(spec, "", vm_name).front().via_jump)
        return {};
    std::string forwards;
    for (const int guest_port : guest_ports)
        if (const auto at = spec.service_address(*vm, guest_port))
            forwards += fmt::format(" -L {}:{}", at->port, host_port(at->host, at->port));
    const auto config = write_ssh_config(spec, resolve_targets(spec, ""));
    // The same path verify takes: the jump host connects to each address (the jump host's
    // entry in that ssh_config).
    return fmt::format("these addresses are reachable only from the jump host; to open them here "
                       "as http://127.0.0.1:<port>: ssh -F {} -N{} {}",
                       config, forwards, jump_alias(spec, vm->host));
}

} // namespace labctl::cli
