#pragma once
// Private to src/cli: the global options, the per-verb registration functions and helpers shared
// by verbs. This is the only place (with src/cli/*.cpp) that sees CLI11.

#include <CLI/CLI.hpp>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include <labctl/config/lab_spec.hpp>
#include <labctl/config/loader.hpp>
#include <labctl/core/error.hpp>

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
    bool yes = false;             ///< provision: restart VMs and lose data without asking (--yes)
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
Runner register_snapshot(CLI::App& app, Context& ctx);
Runner register_console(CLI::App& app, Context& ctx);
Runner register_init(CLI::App& app, Context& ctx);
Runner register_completion(CLI::App& app, Context& ctx);
Runner register_version(CLI::App& app, Context& ctx);
Runner register_complete_helper(CLI::App& app, Context& ctx);

/// Loads and validates the lab file named by -f. Warnings are logged; errors are all printed to
/// stderr, then Error(usage) is thrown.
config::LabSpec load_spec(const Context& ctx, const config::Overrides& overrides = {},
                          bool require_key = false);

/// The name one_of gives its validator: this prefix, then every choice followed by '\n'. The
/// name is how the choices reach the completion generator (one_of_choices): CLI11 2.1 has no
/// accessor for an IsMember's set, and its messages are not an interface.
inline constexpr std::string_view k_one_of_name = "labctl.one_of\n";

/// A CLI11 choice validator whose choices are shown by the option's type name only (set with
/// type_name("a|b")), so help does not print them twice. A choice must not contain '\n'.
inline CLI::Validator one_of(std::vector<std::string> choices) {
    std::string name(k_one_of_name);
    for (const auto& c : choices) {
        if (c.empty() || c.find('\n') != std::string::npos)
            throw Error(ExitCode::internal, "one_of: a choice is empty or contains a newline");
        name += c + '\n';
    }
    CLI::Validator v = CLI::IsMember(std::move(choices));
    v.description("");
    v.name(std::move(name));
    return v;
}

/// The choices of the one_of check on `opt`, in their order; empty when it has none.
inline std::vector<std::string> one_of_choices(CLI::Option& opt) {
    for (int i = 0;; ++i) {
        const CLI::Validator* v = nullptr;
        try {
            v = opt.get_validator(i);
        } catch (const CLI::OptionNotFound&) {
            return {}; // CLI11 2.1 has no validator count: the index ran past the last one
        }
        std::string_view name = v->get_name();
        if (!name.starts_with(k_one_of_name))
            continue;
        name.remove_prefix(k_one_of_name.size());
        std::vector<std::string> choices;
        for (auto end = name.find('\n'); end != std::string_view::npos; end = name.find('\n')) {
            choices.emplace_back(name.substr(0, end));
            name.remove_prefix(end + 1);
        }
        return choices;
    }
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
