#include <pwd.h>
#include <unistd.h>

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

/// "[USER@]HOST[:PORT]" (validated by the loader; "[v6]:port" too) into a JumpSpec.
JumpSpec parse_jump(std::string rest, int default_port) {
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
    if (j.user.empty())
        j.user = local_user();
    return j;
}

} // namespace

std::optional<JumpSpec> LabSpec::jump_host() const {
    std::optional<JumpSpec> out;
    if (ssh.jump == "none")
        return out;
    if (ssh.jump != "auto") {
        out = parse_jump(ssh.jump, 22);
    } else {
        // qemu+ssh://[user@]host[:port]/system?...: libvirt reaches that host over ssh, and so
        // does labctl, to reach the guests on its networks.
        constexpr std::string_view scheme = "+ssh://";
        const auto at = libvirt.uri.find(scheme);
        if (at == std::string::npos)
            return out;
        const auto rest = libvirt.uri.substr(at + scheme.size());
        const auto authority = rest.substr(0, rest.find_first_of("/?"));
        if (authority.empty())
            return out;
        out = parse_jump(authority, 22);
    }
    out->private_key = ssh.jump_key;
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

const std::vector<std::string>& known_checks() {
    static const std::vector<std::string> k_checks{
        "stack.health",    "prometheus.targets",  "prometheus.sli",   "trace.e2e",
        "logs.correlated", "grafana.provisioned", "nginx.resilience", "ssh.hardened",
    };
    return k_checks;
}

} // namespace labctl::config
