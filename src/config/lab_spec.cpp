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

const std::vector<std::string>& known_checks() {
    static const std::vector<std::string> k_checks{
        "stack.health",    "prometheus.targets",  "prometheus.sli",   "trace.e2e",
        "logs.correlated", "grafana.provisioned", "nginx.resilience", "ssh.hardened",
    };
    return k_checks;
}

} // namespace labctl::config
