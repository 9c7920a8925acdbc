// The per-shell rendering of a CliSpec (completion_model.cpp walks the CLI11 tree into one). The
// script bodies are the templates templates/completions/{labctl.bash,_labctl,labctl.fish}.in,
// embedded into the binary and overridable through LABCTL_TEMPLATE_DIR like the others; this file
// renders only the generated parts (options, verbs, the choices of each value) into them.

#include "completion.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <labctl/core/error.hpp>
#include <labctl/core/templates.hpp>
#include <labctl/core/text.hpp>

namespace labctl::cli {

namespace {

// --- bash -------------------------------------------------------------------------------------

/// A case pattern "verb:-x | verb:--xx" for every spelling of an option.
std::string bash_pattern(const std::string& verb, const OptionSpec& o) {
    std::vector<std::string> alternatives;
    for (const auto& n : o.names())
        alternatives.push_back(verb + ":" + n);
    return fmt::format("{}", fmt::join(alternatives, " | "));
}

std::string bash_value_action(ValueKind kind, const std::vector<std::string>& choices) {
    switch (kind) {
    case ValueKind::choice:
        return "__labctl_words " + shell_quote(fmt::format("{}", fmt::join(choices, " "))) +
               " \"$3\"";
    case ValueKind::path:
        return "__labctl_files \"$3\"";
    case ValueKind::vm:
        return "__labctl_vms \"$3\" \"$4\"";
    case ValueKind::host:
        return "__labctl_hosts \"$3\" \"$4\"";
    case ValueKind::none:
    case ValueKind::text:
        break;
    }
    return "COMPREPLY=()";
}

std::string option_words(const std::vector<OptionSpec>& options) {
    std::vector<std::string> words;
    for (const auto& o : options)
        for (const auto& n : o.names())
            words.push_back(n);
    return fmt::format("{}", fmt::join(words, " "));
}

// --- zsh --------------------------------------------------------------------------------------

/// Text inside an _arguments "[description]".
std::string zsh_description(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '[' || c == ']' || c == '\\')
            out += '\\';
        out += c;
    }
    return out;
}

/// The message part of an _arguments ":message:action".
std::string zsh_message(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == ':' || c == '\\')
            out += '\\';
        out += c;
    }
    return out;
}

std::string zsh_action(ValueKind kind, const std::vector<std::string>& choices) {
    switch (kind) {
    case ValueKind::choice: {
        std::vector<std::string> escaped;
        for (const auto& c : choices) {
            std::string e;
            for (char ch : c) {
                if (ch == ' ' || ch == '(' || ch == ')' || ch == ':' || ch == '\\')
                    e += '\\';
                e += ch;
            }
            escaped.push_back(e);
        }
        return "(" + fmt::format("{}", fmt::join(escaped, " ")) + ")";
    }
    case ValueKind::path:
        return "_files";
    case ValueKind::vm:
        return "_labctl_vms";
    case ValueKind::host:
        return "_labctl_hosts";
    case ValueKind::none:
    case ValueKind::text:
        break;
    }
    return " "; // show the message, complete nothing
}

/// _arguments specs for one option, one per spelling.
std::vector<std::string> zsh_option_specs(const OptionSpec& o) {
    std::vector<std::string> specs;
    const auto names = o.names();
    const std::string exclusion =
        o.repeatable
            ? "*"
            : (names.size() > 1 ? "(" + fmt::format("{}", fmt::join(names, " ")) + ")" : "");
    for (const auto& n : names) {
        std::string spec = exclusion + n;
        if (o.takes_value())
            spec += n.starts_with("--") ? "=" : "+";
        spec += "[" + zsh_description(o.description) + "]";
        if (o.takes_value())
            spec += ":" + zsh_message(o.value_name) + ":" + zsh_action(o.kind, o.choices);
        specs.push_back(shell_quote(spec));
    }
    return specs;
}

std::string zsh_positional_spec(const PositionalSpec& p, std::size_t index) {
    const std::string position = p.variadic ? "*" : std::to_string(index + 1);
    return shell_quote(position + ":" + zsh_message(p.value_name) + ":" +
                       zsh_action(p.kind, p.choices));
}

// --- fish -------------------------------------------------------------------------------------

std::string fish_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\\' || c == '\'')
            out += '\\';
        out += c;
    }
    return out + "'";
}

/// The `complete` arguments naming an option (-s f -l file) and its value (-r -F, -x -a ...).
std::string fish_option_args(const OptionSpec& o) {
    std::string args;
    for (const auto& s : o.short_names)
        args += " -s " + s.substr(1);
    for (const auto& l : o.long_names)
        args += " -l " + l.substr(2);
    switch (o.kind) {
    case ValueKind::none:
        break;
    case ValueKind::choice:
        args += " -x -a " + fish_quote(fmt::format("{}", fmt::join(o.choices, " ")));
        break;
    case ValueKind::path:
        args += " -r -F";
        break;
    case ValueKind::vm:
        args += " -x -a '(__labctl_vms)'";
        break;
    case ValueKind::host:
        args += " -x -a '(__labctl_hosts)'";
        break;
    case ValueKind::text:
        args += " -x";
        break;
    }
    if (!o.description.empty())
        args += " -d " + fish_quote(o.description);
    return args;
}

std::string fish_positional_args(const PositionalSpec& p) {
    std::string args;
    switch (p.kind) {
    case ValueKind::choice:
        args = " -a " + fish_quote(fmt::format("{}", fmt::join(p.choices, " ")));
        break;
    case ValueKind::path:
        args = " -F";
        break;
    case ValueKind::vm:
        args = " -a '(__labctl_vms)'";
        break;
    case ValueKind::host:
        args = " -a '(__labctl_hosts)'";
        break;
    case ValueKind::none:
    case ValueKind::text:
        return {};
    }
    if (!p.description.empty())
        args += " -d " + fish_quote(p.description);
    return args;
}

} // namespace

std::string bash_completion(const CliSpec& cli) {
    std::vector<std::string> takes_value, option_values, positionals, options, verbs;
    auto add_values = [&](const std::string& verb, const std::vector<OptionSpec>& opts) {
        std::vector<std::string> patterns;
        for (const auto& o : opts) {
            if (!o.takes_value())
                continue;
            patterns.push_back(bash_pattern(verb, o));
            option_values.push_back(fmt::format("        {}) {} ;;", bash_pattern(verb, o),
                                                bash_value_action(o.kind, o.choices)));
        }
        if (!patterns.empty())
            takes_value.push_back(
                fmt::format("        {}) return 0 ;;", fmt::join(patterns, " | ")));
    };
    for (const auto& c : cli.commands) {
        verbs.push_back(c.name);
        add_values(c.name, c.options);
        options.push_back(fmt::format("        {}) __labctl_words \"{} $globals\" \"$2\" ;;",
                                      c.name, option_words(c.options)));
        for (std::size_t i = 0; i < c.positionals.size(); ++i) {
            const auto& p = c.positionals[i];
            const auto action = bash_value_action(p.kind, p.choices);
            if (action != "COMPREPLY=()")
                positionals.push_back(fmt::format("        {}:{}) {} ;;", c.name,
                                                  p.variadic ? "*" : std::to_string(i), action));
        }
    }
    add_values("*", cli.global_options); // globals last: a verb's own option wins
    options.insert(options.begin(),
                   fmt::format("        '') __labctl_words \"{} $globals\" \"$2\" ;;",
                               option_words(cli.root_options)));
    return templates::render(templates::load("completions/labctl.bash.in"),
                             {{"takes_value", fmt::format("{}", fmt::join(takes_value, "\n"))},
                              {"option_values", fmt::format("{}", fmt::join(option_values, "\n"))},
                              {"positionals", fmt::format("{}", fmt::join(positionals, "\n"))},
                              {"global_words", shell_quote(option_words(cli.global_options))},
                              {"options", fmt::format("{}", fmt::join(options, "\n"))},
                              {"verbs", shell_quote(fmt::format("{}", fmt::join(verbs, " ")))}});
}

std::string zsh_completion(const CliSpec& cli) {
    std::vector<std::string> globals, root_options, commands, verbs;
    for (const auto& o : cli.global_options)
        for (const auto& spec : zsh_option_specs(o))
            globals.push_back("    " + spec);
    for (const auto& o : cli.root_options)
        for (const auto& spec : zsh_option_specs(o))
            root_options.push_back("    " + spec + " \\");
    for (const auto& c : cli.commands) {
        commands.push_back("        " + shell_quote(zsh_message(c.name) + ":" + c.description));
        std::string arm =
            fmt::format("        ({})\n          _arguments -s -S : $globals \\\n", c.name);
        for (const auto& o : c.options)
            for (const auto& spec : zsh_option_specs(o))
                arm += "            " + spec + " \\\n";
        for (std::size_t i = 0; i < c.positionals.size(); ++i)
            arm += "            " + zsh_positional_spec(c.positionals[i], i) + " \\\n";
        arm += "            && ret=0\n          ;;";
        verbs.push_back(arm);
    }
    return templates::render(templates::load("completions/_labctl.in"),
                             {{"globals", fmt::format("{}", fmt::join(globals, "\n"))},
                              {"root_options", fmt::format("{}", fmt::join(root_options, "\n"))},
                              {"commands", fmt::format("{}", fmt::join(commands, "\n"))},
                              {"verbs", fmt::format("{}", fmt::join(verbs, "\n"))}});
}

std::string fish_completion(const CliSpec& cli) {
    std::vector<std::string> takes_value, globals, root_options, commands, verbs;
    for (const auto& c : cli.commands)
        for (const auto& o : c.options)
            if (o.takes_value())
                for (const auto& n : o.names())
                    takes_value.push_back(fish_quote(c.name + ":" + n));
    for (const auto& o : cli.global_options)
        if (o.takes_value())
            for (const auto& n : o.names())
                takes_value.push_back(fish_quote("*:" + n));

    for (const auto& o : cli.global_options)
        globals.push_back("complete -c labctl" + fish_option_args(o));
    for (const auto& o : cli.root_options)
        root_options.push_back("complete -c labctl -n __labctl_needs_verb" + fish_option_args(o));
    for (const auto& c : cli.commands)
        commands.push_back(fmt::format("complete -c labctl -n __labctl_needs_verb -a {} -d {}",
                                       fish_quote(c.name), fish_quote(c.description)));
    for (const auto& c : cli.commands) {
        std::string block = fmt::format("\n# labctl {}\n", c.name);
        const auto condition = fish_quote("__labctl_using_verb " + c.name);
        for (const auto& o : c.options)
            block += "complete -c labctl -n " + condition + fish_option_args(o) + "\n";
        for (std::size_t i = 0; i < c.positionals.size(); ++i) {
            const auto& p = c.positionals[i];
            const auto args = fish_positional_args(p);
            if (args.empty())
                continue;
            block += "complete -c labctl -n " +
                     fish_quote(fmt::format("__labctl_positional {} {}{}", c.name, i,
                                            p.variadic ? " +" : "")) +
                     args + "\n";
        }
        verbs.push_back(block);
    }
    // Every verb's block ends in a newline; the template's own ends the last one.
    std::string verb_blocks = fmt::format("{}", fmt::join(verbs, ""));
    if (verb_blocks.ends_with('\n'))
        verb_blocks.pop_back();
    return templates::render(templates::load("completions/labctl.fish.in"),
                             {{"takes_value", fmt::format("{}", fmt::join(takes_value, " "))},
                              {"globals", fmt::format("{}", fmt::join(globals, "\n"))},
                              {"root_options", fmt::format("{}", fmt::join(root_options, "\n"))},
                              {"commands", fmt::format("{}", fmt::join(commands, "\n"))},
                              {"verbs", verb_blocks}});
}

const std::vector<std::string>& completion_shells() {
    static const std::vector<std::string> k_shells{"bash", "zsh", "fish"};
    return k_shells;
}

std::string completion_script(CLI::App& root, std::string_view shell) {
    const auto cli = describe_cli(root);
    if (shell == "bash")
        return bash_completion(cli);
    if (shell == "zsh")
        return zsh_completion(cli);
    if (shell == "fish")
        return fish_completion(cli);
    throw Error(ExitCode::usage, fmt::format("no completion for shell '{}'", shell),
                "choose one of: " + fmt::format("{}", fmt::join(completion_shells(), ", ")));
}

} // namespace labctl::cli
