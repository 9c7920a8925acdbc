#include "app.hpp"

namespace labctl::cli {

Runner register_plan(CLI::App& app, Context& /*ctx*/) {
    auto detailed = std::make_shared<bool>(false);
    auto* sub = app.add_subcommand(
        "plan", "Compare lab.yaml with what exists in libvirt: create / keep / replace / delete");
    sub->add_flag("--detailed-exitcode", *detailed, "Exit 10 when there are changes, 0 when none");
    return []() -> int {
        not_available("plan");
    };
}

} // namespace labctl::cli
