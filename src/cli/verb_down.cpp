#include "app.hpp"

namespace labctl::cli {

Runner register_down(CLI::App& app, Context& /*ctx*/) {
    auto purge = std::make_shared<bool>(false);
    auto* sub = app.add_subcommand(
        "down", "Remove exactly what labctl created for this lab (by metadata label)");
    sub->add_flag("--purge", *purge,
                  "Also remove the base image volume and the lab's local state (.labctl/)");
    return []() -> int {
        not_available("down");
    };
}

} // namespace labctl::cli
