// The environment variables labctl reads. The loader applies them between the file and the
// command line; LABCTL_FILE is read by the CLI itself.
#include <cstdlib>

#include <labctl/config/loader.hpp>

namespace labctl::config {

const std::vector<EnvVar>& environment_variables() {
    static const std::vector<EnvVar> k_vars{
        {"LABCTL_FILE", "default for -f/--file (the lab file; otherwise ./lab.yaml)"},
        {"LABCTL_PROJECT", "overrides project"},
        {"LABCTL_LIBVIRT_URI", "overrides libvirt.uri (e.g. qemu:///system, test:///default)"},
        {"LABCTL_POOL", "overrides libvirt.pool"},
        {"LABCTL_DOMAIN_TYPE", "overrides libvirt.domain_type (kvm, qemu or auto)"},
        {"LABCTL_SSH_USER", "overrides ssh.user"},
        {"LABCTL_SSH_KEY",
         "overrides ssh.private_key (relative paths resolve against the current directory)"},
        {"LABCTL_KNOWN_HOSTS",
         "overrides ssh.known_hosts (relative paths resolve against the current directory)"},
        {"PROJECT", "overrides deploy.project, the compose project name (as the original lab's "
                    "scripts used it)"},
        {"LAB_HOST", "overrides deploy.host: deploy, harden and verify an existing host"},
        {"LAB_PINS", "overrides deploy.pins, the stack's image pin set (original, current)"},
    };
    return k_vars;
}

std::map<std::string, std::string> environment_snapshot() {
    std::map<std::string, std::string> out;
    for (const auto& var : environment_variables())
        if (const char* value = std::getenv(var.name.c_str()))
            out.emplace(var.name, value);
    return out;
}

} // namespace labctl::config
