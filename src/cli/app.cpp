#include "app.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <iostream>
#include <map>

#include <labctl/cli/cli.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/exit_code.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/scope_guard.hpp>
#include <labctl/core/signals.hpp>
#include <labctl/core/terminal.hpp>
#include <labctl/core/version.hpp>
#include <labctl/remote/session_pool.hpp>

namespace labctl::cli {

std::string exit_code_footer() {
    std::string s = "Exit codes:\n";
    for (const auto& e : k_exit_codes)
        s += fmt::format("  {:>3}  {}\n", to_int(e.code), e.meaning);
    s += "\nRun 'labctl <command> --help' for a command's options; 'man labctl' for the manual.";
    return s;
}

void print_json(const nlohmann::json& j) {
    print(j.dump(2) + "\n");
}

namespace {

/// Thrown by load_spec under LABCTL_PARSE_ONLY=config once the lab file and flags are valid.
struct ConfigChecked {};

bool g_results_to_stderr = false;
} // namespace

void results_to_stderr(bool on) {
    g_results_to_stderr = on;
}

void print(const std::string& text) {
    FILE* out = g_results_to_stderr ? stderr : stdout;
    std::fwrite(text.data(), 1, text.size(), out);
    std::fflush(out);
}

config::LabSpec load_spec(const Context& ctx, const config::Overrides& overrides,
                          bool require_key) {
    config::LoadOptions opts;
    opts.path = ctx.global.file;
    opts.env = config::environment_snapshot();
    opts.overrides = overrides;
    opts.require_key = require_key;
    auto result = config::load_lab(opts);
    std::size_t errors = 0;
    for (const auto& d : result.diagnostics) {
        if (d.severity == config::Severity::warning) {
            log::warn("{}", config::format(d));
        } else {
            ++errors;
            std::fprintf(stderr, "%s\n", config::format(d).c_str());
        }
    }
    if (!result.ok())
        throw Error(
            ExitCode::usage,
            fmt::format("{} has {} error{}", ctx.global.file, errors, errors == 1 ? "" : "s"),
            "fix the problems above; 'labctl validate' lists them all");
    if (auto parse_only = terminal::env("LABCTL_PARSE_ONLY"); parse_only && *parse_only == "config")
        throw ConfigChecked{};
    return *result.spec;
}

namespace {

void configure_logging(const GlobalOptions& g) {
    log::Settings s;
    s.level = g.quiet          ? log::Level::warn
              : g.verbose >= 2 ? log::Level::trace
              : g.verbose == 1 ? log::Level::debug
                               : log::Level::info;
    s.format = g.log_format == "json" ? log::Format::json : log::Format::text;
    s.tty = terminal::is_tty(2) && !terminal::ci_env();
    s.color = s.tty && !g.no_color && !terminal::no_color_env();
    log::configure(s);
}

} // namespace

int run(int argc, char** argv) {
    Context ctx;
    if (auto f = terminal::env("LABCTL_FILE"); f && !f->empty())
        ctx.global.file = *f;

    CLI::App app{"labctl: turn one Linux host with KVM into a verified observability lab.\n"
                 "Stages: provision -> harden -> deploy -> verify (or all at once: up).",
                 "labctl"};
    ctx.root = &app;
    app.footer(exit_code_footer());
    app.fallthrough(); // global flags are accepted after the verb too
    app.set_help_all_flag("--help-all", "Print help for every command");

    auto& g = ctx.global;
    app.add_option("-f,--file", g.file, "Lab file (default: lab.yaml, or $LABCTL_FILE)")
        ->type_name("PATH");
    app.add_flag("-v,--verbose", g.verbose, "More detail on stderr (-vv: trace)");
    app.add_flag("-q,--quiet", g.quiet, "Only warnings and errors on stderr");
    app.add_option("--output", g.output, "Result format on stdout")
        ->check(one_of({"table", "json"}))
        ->type_name("table|json");
    app.add_option("--log-format", g.log_format, "Log format on stderr")
        ->check(one_of({"text", "json"}))
        ->type_name("text|json");
    app.add_flag("--no-color", g.no_color, "No ANSI colours (also: NO_COLOR set, or CI)");
    bool show_version = false;
    app.add_flag("--version", show_version, "Print the version and exit");

    std::map<CLI::App*, Runner> runners;
    auto add = [&](Runner (*reg)(CLI::App&, Context&)) {
        const auto before = app.get_subcommands({}).size();
        Runner r = reg(app, ctx);
        auto subs = app.get_subcommands({});
        if (subs.size() != before + 1)
            throw Error(ExitCode::internal, "verb registration must add exactly one subcommand");
        ctx.runners[subs.back()->get_name()] = r;
        runners[subs.back()] = std::move(r);
    };
    add(register_up);
    add(register_provision);
    add(register_harden);
    add(register_deploy);
    add(register_verify);
    add(register_down);
    add(register_snapshot);
    add(register_plan);
    add(register_validate);
    add(register_status);
    add(register_ssh);
    add(register_console);
    add(register_doctor);
    add(register_image);
    add(register_init);
    add(register_completion);
    add(register_version);
    add(register_complete_helper);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        print(app.help());
        return 0;
    } catch (const CLI::CallForAllHelp&) {
        print(app.help("", CLI::AppFormatMode::All));
        return 0;
    } catch (const CLI::ParseError& e) {
        // CLI11's own exit codes never leak: every parse problem is a usage error (2).
        std::string where;
        for (auto* sub : app.get_subcommands())
            where = sub->get_name();
        throw Error(ExitCode::usage, e.what(),
                    where.empty() ? "run 'labctl --help' for usage"
                                  : fmt::format("run 'labctl {} --help' for usage", where));
    }
    configure_logging(g);
    if (show_version) {
        print(fmt::format("labctl {}\n", version()));
        return 0;
    }
    auto chosen = app.get_subcommands();
    if (chosen.empty())
        throw Error(ExitCode::usage, "no command given",
                    "run 'labctl --help' for the list of commands");
    // Lets CI check a command line (e.g. every labctl call in a Jenkinsfile) without running it;
    // "config" also loads the lab file with the command's flags layered on, then stops.
    if (auto parse_only = terminal::env("LABCTL_PARSE_ONLY"); parse_only && *parse_only == "1")
        return 0;
    // The connections kept between stages end with the command, before libssh2 is torn down.
    ScopeGuard close_kept([] { remote::close_sessions(); });
    try {
        return runners.at(chosen.front())();
    } catch (const ConfigChecked&) {
        return 0;
    }
}

} // namespace labctl::cli
