#include "app.hpp"

namespace labctl::cli {

Runner register_status(CLI::App& app, Context& /*ctx*/) {
    app.add_subcommand("status", "Show the lab's VMs, their state and addresses");
    return []() -> int {
        not_available("status");
    };
}

} // namespace labctl::cli
