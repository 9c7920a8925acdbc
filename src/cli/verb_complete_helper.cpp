#include "app.hpp"

namespace labctl::cli {

// Hidden verb the shell completions call to list dynamic values from the lab file: `vms`, the VM
// names; `hosts`, the SSH destinations --host takes (LabSpec::ssh_destinations: every VM as
// labctl reaches it, and deploy.host). It never fails loudly: a broken lab file simply completes
// nothing.
Runner register_complete_helper(CLI::App& app, Context& ctx) {
    auto what = std::make_shared<std::string>();
    auto* sub = app.add_subcommand("__complete", "");
    sub->group(""); // hidden from --help
    sub->add_option("what", *what, "vms or hosts")->required();
    return [&ctx, what]() -> int {
        if (*what != "vms" && *what != "hosts")
            return 0;
        config::LoadOptions opts;
        opts.path = ctx.global.file;
        opts.env = config::environment_snapshot();
        const auto result = config::load_lab(opts);
        if (!result.spec)
            return 0;
        if (*what == "vms")
            for (const auto& vm : result.spec->vms)
                print(vm.name + "\n");
        else
            for (const auto& destination : result.spec->ssh_destinations())
                print(destination + "\n");
        return 0;
    };
}

} // namespace labctl::cli
