#include "app.hpp"

namespace labctl::cli {

Runner register_completion(CLI::App& app, Context& /*ctx*/) {
    auto shell = std::make_shared<std::string>();
    auto* sub = app.add_subcommand("completion", "Print the shell completion script");
    sub->add_option("shell", *shell, "Shell")
        ->required()
        ->check(CLI::IsMember({"bash", "zsh", "fish"}))
        ->type_name("bash|zsh|fish");
    return []() -> int {
        not_available("completion");
    };
}

} // namespace labctl::cli
