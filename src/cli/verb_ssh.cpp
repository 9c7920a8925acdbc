#include "app.hpp"

namespace labctl::cli {

Runner register_ssh(CLI::App& app, Context& /*ctx*/) {
    auto vm = std::make_shared<std::string>();
    auto command = std::make_shared<std::vector<std::string>>();
    auto* sub = app.add_subcommand(
        "ssh", "Open a shell on a lab VM (or run a command) with the pinned host key");
    sub->add_option("vm", *vm, "VM name from lab.yaml")->required()->type_name("VM");
    sub->add_option("command", *command, "Command to run instead of a shell (after --)")
        ->type_name("CMD");
    return []() -> int {
        not_available("ssh");
    };
}

} // namespace labctl::cli
