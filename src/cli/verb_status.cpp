#include <labctl/core/table.hpp>
#include <labctl/provision/provision.hpp>

#include "app.hpp"

namespace labctl::cli {

Runner register_status(CLI::App& app, Context& ctx) {
    app.add_subcommand("status", "Show the lab's VMs, their state and addresses");
    return [&ctx]() -> int {
        const auto spec = load_spec(ctx);
        const auto vms = provision::status(spec);
        if (ctx.global.json()) {
            nlohmann::json list = nlohmann::json::array();
            for (const auto& v : vms)
                list.push_back({{"vm", v.vm},
                                {"domain", v.domain},
                                {"state", v.state},
                                {"address", v.address},
                                {"spec", v.spec}});
            print_json({{"project", spec.project}, {"uri", spec.libvirt.uri}, {"vms", list}});
            return 0;
        }
        Table t({"VM", "DOMAIN", "STATE", "ADDRESS", "SPEC"});
        for (const auto& v : vms)
            t.add({v.vm, v.domain, v.state, v.address.empty() ? "-" : v.address, v.spec});
        print(t.render() + "\n");
        return 0;
    };
}

} // namespace labctl::cli
