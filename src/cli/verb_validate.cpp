#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdio>

#include <labctl/core/error.hpp>

#include "app.hpp"

namespace labctl::cli {

Runner register_validate(CLI::App& app, Context& ctx) {
    auto strict = std::make_shared<bool>(false);
    auto* sub = app.add_subcommand(
        "validate", "Check lab.yaml and report every problem at once (file:line:col and a hint)");
    sub->add_flag("--strict", *strict,
                  "Treat warnings as errors and require the SSH key (as the stages do)");
    return [&ctx, strict]() -> int {
        config::LoadOptions opts;
        opts.path = ctx.global.file;
        opts.env = config::environment_snapshot();
        opts.require_key = *strict;
        const auto result = config::load_lab(opts);
        std::size_t errors = 0, warnings = 0;
        for (const auto& d : result.diagnostics)
            (d.severity == config::Severity::error ? errors : warnings)++;
        const bool ok = errors == 0 && (!*strict || warnings == 0);

        if (ctx.global.json()) {
            nlohmann::json diags = nlohmann::json::array();
            for (const auto& d : result.diagnostics)
                diags.push_back(
                    {{"severity", d.severity == config::Severity::error ? "error" : "warning"},
                     {"file", d.where.file},
                     {"line", d.where.line},
                     {"column", d.where.column},
                     {"message", d.message},
                     {"hint", d.hint}});
            print_json({{"file", ctx.global.file},
                        {"valid", ok},
                        {"errors", errors},
                        {"warnings", warnings},
                        {"diagnostics", diags}});
        } else {
            // Like a compiler: the diagnostics on stderr, the verdict on stdout.
            for (const auto& d : result.diagnostics)
                std::fprintf(stderr, "%s\n", config::format(d).c_str());
            if (ok && result.spec) {
                const auto& s = *result.spec;
                std::string network;
                if (s.network.mode == "user") {
                    // No libvirt network in this mode: what matters is what is forwarded.
                    std::vector<std::string> fw;
                    for (const auto& f : s.network.forwards)
                        fw.push_back(fmt::format("{}->{}", f.host, f.guest));
                    network = fmt::format("user-mode network (127.0.0.1 forwards {})",
                                          fmt::join(fw, ", "));
                } else {
                    network = fmt::format("network {} ({})", s.network.name, s.network.cidr);
                }
                print(fmt::format(
                    "{}: valid: project '{}', {} VM{}, {}{}\n", ctx.global.file, s.project,
                    s.vms.size(), s.vms.size() == 1 ? "" : "s", network,
                    warnings ? fmt::format(", {} warning{}", warnings, warnings == 1 ? "" : "s")
                             : ""));
            } else {
                print(fmt::format("{}: invalid: {} error{}, {} warning{}\n", ctx.global.file,
                                  errors, errors == 1 ? "" : "s", warnings,
                                  warnings == 1 ? "" : "s"));
            }
        }
        return ok ? 0 : to_int(ExitCode::usage);
    };
}

} // namespace labctl::cli
