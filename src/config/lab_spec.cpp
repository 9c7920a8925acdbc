#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include <labctl/config/lab_spec.hpp>

namespace labctl::config {

std::string LabSpec::state_dir() const {
    return base_dir + "/.labctl";
}

std::optional<int> VmSpec::host_port(int guest_port) const {
    for (const auto& f : forwards)
        if (f.guest == guest_port)
            return f.host;
    return std::nullopt;
}

LabSpec::Address LabSpec::ssh_address(const VmSpec& vm) const {
    if (auto a = service_address(vm, ssh.port))
        return *a;
    // mode user without the ssh forward happens only for a spec built by hand (the loader adds
    // it): fall back to the default host port rather than the unreachable guest address.
    return {"127.0.0.1", k_default_ssh_host_port};
}

std::optional<LabSpec::Address> LabSpec::service_address(const VmSpec& vm, int guest_port) const {
    if (!user_network())
        return Address{vm.ip, guest_port};
    if (const auto host = vm.host_port(guest_port))
        return Address{"127.0.0.1", *host};
    return std::nullopt;
}

const VmSpec* LabSpec::find_vm(const std::string& name) const {
    for (const auto& vm : vms)
        if (vm.name == name)
            return &vm;
    return nullptr;
}

namespace {

std::string local_user() {
    if (const passwd* pw = ::getpwuid(::geteuid()); pw != nullptr && pw->pw_name != nullptr)
        return pw->pw_name;
    if (const char* u = std::getenv("USER"))
        return u;
    return "root";
}

/// "[USER@]HOST[:PORT]" (validated by the loader; "[v6]:port" and a bare v6 address too) into a
/// JumpSpec; the user stays empty when the text names none.
JumpSpec parse_user_host_port(std::string rest, int default_port) {
    JumpSpec j;
    j.port = default_port;
    if (const auto at = rest.rfind('@'); at != std::string::npos) {
        j.user = rest.substr(0, at);
        rest = rest.substr(at + 1);
    }
    if (!rest.empty() && rest.front() == '[') {
        const auto close = rest.find(']');
        j.host = rest.substr(1, close - 1);
        if (close + 2 < rest.size() && rest[close + 1] == ':')
            j.port = std::stoi(rest.substr(close + 2));
    } else if (const auto colon = rest.find(':');
               colon != std::string::npos && rest.find(':', colon + 1) == std::string::npos) {
        j.host = rest.substr(0, colon);
        j.port = std::stoi(rest.substr(colon + 1));
    } else {
        j.host = rest;
    }
    return j;
}

/// A jump host's "[USER@]HOST[:PORT]": without USER, the local user (as ssh would log in).
JumpSpec parse_jump(const std::string& text, int default_port) {
    JumpSpec j = parse_user_host_port(text, default_port);
    if (j.user.empty())
        j.user = local_user();
    return j;
}

/// "user@host:port", an IPv6 address in brackets so that it reads back the same.
std::string destination(const std::string& user, const std::string& host, int port) {
    const bool v6 = host.find(':') != std::string::npos;
    return user + "@" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

/// The jump of a host whose jump setting is `setting` and whose URI is `uri`.
std::optional<JumpSpec> resolve_jump(const std::string& setting, const std::string& uri,
                                     const std::string& jump_key) {
    std::optional<JumpSpec> out;
    if (setting == "none")
        return out;
    if (setting != "auto") {
        out = parse_jump(setting, 22);
    } else {
        // qemu+ssh://[user@]host[:port]/system?... (also +libssh and +libssh2): libvirt reaches
        // that host over ssh, and so does labctl, to reach the guests on its networks.
        std::string authority;
        for (const std::string_view scheme : {"+ssh://", "+libssh://", "+libssh2://"})
            if (const auto at = uri.find(scheme); at != std::string::npos) {
                const auto rest = uri.substr(at + scheme.size());
                authority = rest.substr(0, rest.find_first_of("/?"));
                break;
            }
        if (authority.empty())
            return out;
        out = parse_jump(authority, 22);
    }
    out->private_key = jump_key;
    if (out->private_key.empty())
        if (const char* home = std::getenv("HOME"))
            for (const char* name : {"id_ed25519", "id_ecdsa", "id_rsa"}) {
                const auto key = std::filesystem::path(home) / ".ssh" / name;
                std::error_code ec;
                if (std::filesystem::is_regular_file(key, ec)) {
                    out->private_key = key.string();
                    break;
                }
            }
    return out;
}

} // namespace

std::optional<JumpSpec> LabSpec::jump_host() const {
    return resolve_jump(ssh.jump, libvirt.uri, ssh.jump_key);
}

std::optional<JumpSpec> LabSpec::jump_for(const HostSpec& host) const {
    return resolve_jump(host.jump, host.libvirt.uri, ssh.jump_key);
}

const HostSpec* LabSpec::find_host(const std::string& name) const {
    for (const auto& h : hosts)
        if (h.name == name)
            return &h;
    return nullptr;
}

const HostSpec& LabSpec::host_of(const VmSpec& vm) const {
    if (const HostSpec* h = find_host(vm.host))
        return *h;
    static const HostSpec k_none;
    return hosts.empty() ? k_none : hosts.front();
}

LabSpec LabSpec::for_host(const HostSpec& host) const {
    LabSpec view = *this;
    view.libvirt = host.libvirt;
    view.ssh.jump = host.jump;
    view.hosts = {host};
    view.vms.clear();
    for (const auto& vm : vms)
        if (&host_of(vm) == find_host(host.name))
            view.vms.push_back(vm);
    return view;
}

std::vector<const VmSpec*> LabSpec::deploy_vms() const {
    std::vector<const VmSpec*> out;
    for (const auto& name : deploy.target_vms)
        if (const VmSpec* vm = find_vm(name))
            out.push_back(vm);
    if (out.empty())
        if (const VmSpec* vm = find_vm(deploy.target_vm))
            out.push_back(vm);
    return out;
}

std::vector<std::string> LabSpec::ssh_destinations() const {
    std::vector<std::string> out;
    auto add = [&out](std::string d) {
        if (std::find(out.begin(), out.end(), d) == out.end())
            out.push_back(std::move(d));
    };
    for (const auto& vm : vms) {
        const auto at = ssh_address(vm);
        add(destination(ssh.user, at.host, at.port));
    }
    if (!deploy.host.empty()) {
        auto d = parse_user_host_port(deploy.host, ssh.port);
        add(destination(d.user.empty() ? ssh.user : d.user, d.host, d.port));
    }
    return out;
}

const std::vector<std::string>& known_checks() {
    static const std::vector<std::string> k_checks{
        "stack.health",     "prometheus.targets", "prometheus.sli",
        "trace.e2e",        "logs.correlated",    "grafana.provisioned",
        "nginx.resilience", "ssh.hardened",       "host.hardened",
    };
    return k_checks;
}

} // namespace labctl::config
