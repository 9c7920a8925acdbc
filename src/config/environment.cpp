// The environment variables labctl reads: the only table of their names and of the setting each
// one layers onto. The loader applies them between the file and the command line (layers.cpp);
// LABCTL_FILE is read by the CLI itself.
#include <cstdlib>

#include <labctl/config/loader.hpp>

namespace labctl::config {

const std::vector<EnvVar>& environment_variables() {
    static const std::vector<EnvVar> k_vars{
        {"LABCTL_FILE", "", "default for -f/--file (the lab file; otherwise ./lab.yaml)"},
        {"LABCTL_PROJECT", "project", "overrides project"},
        {"LABCTL_LIBVIRT_URI", "libvirt.uri",
         "overrides libvirt.uri (e.g. qemu:///system, test:///default)"},
        {"LABCTL_POOL", "libvirt.pool", "overrides libvirt.pool"},
        {"LABCTL_DOMAIN_TYPE", "libvirt.domain_type",
         "overrides libvirt.domain_type (kvm, qemu or auto)"},
        {"LABCTL_SSH_USER", "ssh.user", "overrides ssh.user"},
        {"LABCTL_SSH_KEY", "ssh.private_key",
         "overrides ssh.private_key (relative paths resolve against the current directory)"},
        {"LABCTL_KNOWN_HOSTS", "ssh.known_hosts",
         "overrides ssh.known_hosts (relative paths resolve against the current directory)"},
        {"PROJECT", "deploy.project",
         "overrides deploy.project, the compose project name (as the original lab's scripts used "
         "it)"},
        {"LAB_HOST", "deploy.host",
         "overrides deploy.host: deploy, harden and verify an existing host"},
        {"LAB_PINS", "deploy.pins",
         "overrides deploy.pins, the stack's image pin set (original, current)"},
    };
    return k_vars;
}

std::optional<std::string> environment_value_for(std::string_view setting) {
    for (const auto& var : environment_variables())
        if (var.setting == setting)
            if (const char* value = std::getenv(var.name.c_str()); value != nullptr && *value != 0)
                return std::string(value);
    return std::nullopt;
}

std::map<std::string, std::string> environment_snapshot() {
    std::map<std::string, std::string> out;
    for (const auto& var : environment_variables())
        if (const char* value = std::getenv(var.name.c_str()))
            out.emplace(var.name, value);
    return out;
}

} // namespace labctl::config
