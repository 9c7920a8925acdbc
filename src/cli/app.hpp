#pragma once
// Private to src/cli: the global options, the per-verb registration functions and helpers shared
// by verbs. This is the only place (with src/cli/*.cpp) that sees CLI11.

#include <CLI/CLI.hpp>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include <labctl/config/lab_spec.hpp>
#include <labctl/config/loader.hpp>

namespace labctl::cli {

struct GlobalOptions {
    std::string file = "lab.yaml"; ///< -f; LABCTL_FILE sets the default
    int verbose = 0;
    bool quiet = false;
    std::string output = "table"; ///< table | json
    std::string log_format = "text";
    bool no_color = false;

    bool json() const { return output == "json"; }
};

/// What a verb's registration returns: the function that runs it once argv is parsed.
using Runner = std::function<int()>;

/// Settings `labctl up` hands to the stages it runs (a stage's own flags are not parsed then).
struct UpSettings {
    bool active = false;          ///< a stage runs as part of `up`
    bool keep_on_failure = false; ///< provision: keep what a failed run created
    std::string junit;            ///< verify: write JUnit XML here
};

struct Context {
    GlobalOptions global;
    CLI::App* root = nullptr;              ///< for `completion`, which describes the whole CLI
    std::map<std::string, Runner> runners; ///< by verb name, so `up` can run the stages
    UpSettings up;
};

// One registration function per verb (src/cli/verb_<name>.cpp).
Runner register_up(CLI::App& app, Context& ctx);
Runner register_provision(CLI::App& app, Context& ctx);
Runner register_harden(CLI::App& app, Context& ctx);
Runner register_deploy(CLI::App& app, Context& ctx);
Runner register_verify(CLI::App& app, Context& ctx);
Runner register_down(CLI::App& app, Context& ctx);
Runner register_plan(CLI::App& app, Context& ctx);
Runner register_validate(CLI::App& app, Context& ctx);
Runner register_status(CLI::App& app, Context& ctx);
Runner register_ssh(CLI::App& app, Context& ctx);
Runner register_doctor(CLI::App& app, Context& ctx);
Runner register_image(CLI::App& app, Context& ctx);
Runner register_init(CLI::App& app, Context& ctx);
Runner register_completion(CLI::App& app, Context& ctx);
Runner register_version(CLI::App& app, Context& ctx);
Runner register_complete_helper(CLI::App& app, Context& ctx);

/// Loads and validates the lab file named by -f. Warnings are logged; errors are all printed to
/// stderr, then Error(usage) is thrown.
config::LabSpec load_spec(const Context& ctx, const config::Overrides& overrides = {},
                          bool require_key = false);

/// A CLI11 choice validator whose choices are shown by the option's type name only (set with
/// type_name("a|b")), so help does not print them twice.
inline CLI::Validator one_of(std::vector<std::string> choices) {
    return CLI::IsMember(std::move(choices)).description("");
}

/// Writes `j` (pretty, newline-terminated) to stdout.
void print_json(const nlohmann::json& j);
/// Writes text to stdout as is (to stderr while `up` runs its stages: there the stages' results
/// are progress, and stdout carries only up's own summary).
void print(const std::string& text);
void results_to_stderr(bool on);

/// The exit code table for `--help`'s footer.
std::string exit_code_footer();

} // namespace labctl::cli
