#pragma once
// Shell completion scripts generated from the CLI11 command tree, so they cannot drift from the
// verbs and options the binary really accepts. Private to src/cli (it sees CLI11).
//
// describe_cli() (completion_model.cpp) walks the tree once into a plain description (CliSpec);
// one generator per shell (completion.cpp) renders that description into its script template,
// templates/completions/*.in. Value completion is derived from each option: its one_of check
// (app.hpp) gives the choices, PATH/FILE/DIR type names complete file names, VM completes the
// lab's VM names through the hidden `labctl __complete vms`, [USER@]HOST[:PORT] the lab's SSH
// destinations through `labctl __complete hosts`.

#include <CLI/CLI.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace labctl::cli {

/// What the value of an option or positional argument completes to.
enum class ValueKind {
    none,   ///< a flag: takes no value
    choice, ///< one of a fixed list
    path,   ///< a file or directory name
    vm,     ///< a VM name from the lab file
    host,   ///< an SSH destination of the lab file (USER@HOST:PORT of a VM, deploy.host)
    text,   ///< free text: nothing to complete
};

struct OptionSpec {
    std::vector<std::string> long_names;  ///< with the leading "--"
    std::vector<std::string> short_names; ///< with the leading "-"
    std::string description;
    std::string value_name; ///< e.g. PATH, STAGE; empty for flags
    ValueKind kind = ValueKind::none;
    std::vector<std::string> choices;
    bool repeatable = false;

    /// Every spelling: short names first, then long names.
    std::vector<std::string> names() const;
    bool takes_value() const { return kind != ValueKind::none; }
};

struct PositionalSpec {
    std::string name;
    std::string description;
    std::string value_name;
    ValueKind kind = ValueKind::text;
    std::vector<std::string> choices;
    bool variadic = false; ///< takes every remaining argument
};

struct CommandSpec {
    std::string name;
    std::string description;
    std::vector<OptionSpec> options; ///< its own options, --help included
    std::vector<PositionalSpec> positionals;
};

struct CliSpec {
    std::string program;
    std::vector<OptionSpec> root_options;   ///< only before the verb (--help, --help-all)
    std::vector<OptionSpec> global_options; ///< before or after the verb (the root falls through)
    std::vector<CommandSpec> commands;      ///< visible verbs, in registration order
};

/// Describes the command tree under `root`. Hidden subcommands and options (empty group) are left
/// out.
CliSpec describe_cli(CLI::App& root);

std::string bash_completion(const CliSpec& cli);
std::string zsh_completion(const CliSpec& cli);
std::string fish_completion(const CliSpec& cli);

/// The shells completion_script() accepts.
const std::vector<std::string>& completion_shells();

/// The completion script for `shell` (bash, zsh or fish); throws Error(usage) for another shell.
std::string completion_script(CLI::App& root, std::string_view shell);

} // namespace labctl::cli
