#include "targets.hpp"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
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
    if (!host_flag.empty())
        return {{host_flag, remote::parse_endpoint(host_flag, {"", spec.ssh.port, spec.ssh.user}),
                 spec.ssh.jump != "auto" && spec.jump_host().has_value(), ""}};
    // mode nat: the VM's address and ssh.port; mode user: 127.0.0.1 and the host side of the
    // VM's ssh forward, the same host:port its key is pinned under in known_hosts.
    std::vector<Target> out;
    for (const auto& vm : spec.vms) {
        if (!vm_filter.empty() && vm.name != vm_filter)
            continue;
        const auto at = spec.ssh_address(vm);
        const auto& host = spec.host_of(vm);
        out.push_back({vm.name, {at.host, at.port, spec.ssh.user},
                       spec.jump_for(host).has_value(), host.name});
    }
    if (out.empty())
        throw usage_error(vm_filter.empty()
                              ? "the lab has no VMs"
                              : fmt::format("no VM named '{}' in {}", vm_filter, spec.source_file),
                          "VM names are listed under vms: in lab.yaml");
    return out;
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
            const std::string alias = spec.several_hosts() && !t.lab_host.empty()
                                          ? "labctl-jump-" + t.lab_host
                                          : std::string("labctl-jump");
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

} // namespace labctl::cli
