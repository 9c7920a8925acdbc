#include "app.hpp"

namespace labctl::cli {

Runner register_harden(CLI::App& app, Context& /*ctx*/) {
    auto host = std::make_shared<std::string>();
    auto profile = std::make_shared<std::string>();
    auto* sub = app.add_subcommand(
        "harden", "Harden SSH on the lab VMs (key-only, passwords locked) with automatic revert");
    sub->add_option("--host", *host, "Harden an existing host instead of the lab's VMs")
        ->type_name("[USER@]HOST[:PORT]");
    sub->add_option("--profile", *profile, "Algorithm profile (default from lab.yaml: modern)")
        ->check(one_of({"modern", "compat"}))
        ->type_name("modern|compat");
    return []() -> int {
        not_available("harden");
    };
}

} // namespace labctl::cli
