#include "app.hpp"

namespace labctl::cli {

// Hidden verb the shell completions call to list dynamic values (VM names from the lab file).
// It never fails loudly: a broken lab file simply completes nothing.
Runner register_complete_helper(CLI::App& app, Context& ctx) {
    auto what = std::make_shared<std::string>();
    auto* sub = app.add_subcommand("__complete", "");
    sub->group(""); // hidden from --help
    sub->add_option("what", *what, "vms")->required();
    return [&ctx, what]() -> int {
        if (*what != "vms")
            return 0;
        config::LoadOptions opts;
        opts.path = ctx.global.file;
        opts.env = config::environment_snapshot();
        const auto result = config::load_lab(opts);
        if (result.spec)
            for (const auto& vm : result.spec->vms)
                print(vm.name + "\n");
        return 0;
    };
}

} // namespace labctl::cli
