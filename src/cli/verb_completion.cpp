#include <fmt/format.h>
#include <fmt/ranges.h>

#include "app.hpp"
#include "completion.hpp"

namespace labctl::cli {

// `labctl completion bash|zsh|fish`: the script is generated from the command tree (ctx.root),
// so it always matches the verbs and options of this binary.
Runner register_completion(CLI::App& app, Context& ctx) {
    auto shell = std::make_shared<std::string>();
    auto* sub = app.add_subcommand("completion", "Print the shell completion script");
    sub->add_option("shell", *shell, "Shell")
        ->required()
        ->check(one_of(completion_shells()))
        ->type_name(fmt::format("{}", fmt::join(completion_shells(), "|")));
    return [&ctx, shell]() -> int {
        print(completion_script(*ctx.root, *shell));
        return 0;
    };
}

} // namespace labctl::cli
