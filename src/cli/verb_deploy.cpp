#include "app.hpp"

namespace labctl::cli {

Runner register_deploy(CLI::App& app, Context& /*ctx*/) {
    auto host = std::make_shared<std::string>();
    auto dry_run = std::make_shared<bool>(false);
    auto* sub = app.add_subcommand(
        "deploy", "Sync the stack with rsync and run 'docker compose up -d --build --wait'");
    sub->add_option("--host", *host, "Deploy to an existing host (no libvirt needed)")
        ->type_name("[USER@]HOST[:PORT]");
    sub->add_flag("--dry-run", *dry_run, "Show what rsync would change; change nothing");
    return []() -> int {
        not_available("deploy");
    };
}

} // namespace labctl::cli
