#include "app.hpp"

namespace labctl::cli {

Runner register_provision(CLI::App& app, Context& /*ctx*/) {
    auto keep = std::make_shared<bool>(false);
    auto strict = std::make_shared<bool>(false);
    auto* sub = app.add_subcommand(
        "provision", "Create the network, volumes, cloud-init seed and VMs; wait for IP, SSH and "
                     "cloud-init");
    sub->add_flag("--keep-on-failure", *keep, "Keep what a failed run created (for debugging)");
    sub->add_flag("--strict", *strict, "Treat cloud-init warnings (status 2) as failures");
    return []() -> int {
        not_available("provision");
    };
}

} // namespace labctl::cli
