#include <labctl/config/lab_spec.hpp>

namespace labctl::config {

std::string LabSpec::state_dir() const {
    return base_dir + "/.labctl";
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
