#include <fmt/format.h>

#include <labctl/core/version.hpp>

#include "app.hpp"

namespace labctl::cli {

Runner register_version(CLI::App& app, Context& ctx) {
    app.add_subcommand("version", "Print labctl's version and build revision");
    return [&ctx]() -> int {
        if (ctx.global.json())
            print_json(
                {{"version", std::string(version())}, {"revision", std::string(git_revision())}});
        else
            print(fmt::format("labctl {} ({})\n", version(), git_revision()));
        return 0;
    };
}

} // namespace labctl::cli
