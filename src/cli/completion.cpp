#include "completion.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include <labctl/config/lab_spec.hpp>
#include <labctl/core/error.hpp>

namespace labctl::cli {

std::vector<std::string> OptionSpec::names() const {
    std::vector<std::string> all = short_names;
    all.insert(all.end(), long_names.begin(), long_names.end());
    return all;
}

namespace {

// The stages `up --stage/--skip/--from` accept; used only when an option is typed STAGE without
// an IsMember check to read them from.
const std::vector<std::string> k_stages{"provision", "harden", "deploy", "verify"};

std::vector<std::string> split(const std::string& text, char separator) {
    std::vector<std::string> parts;
    std::string::size_type start = 0;
    while (true) {
        const auto end = text.find(separator, start);
        parts.push_back(text.substr(start, end - start));
        if (end == std::string::npos)
            break;
        start = end + 1;
    }
    parts.erase(std::remove(parts.begin(), parts.end(), std::string{}), parts.end());
    return parts;
}

std::string join(const std::vector<std::string>& words, std::string_view separator = " ") {
    std::string out;
    for (const auto& w : words) {
        if (!out.empty())
            out += separator;
        out += w;
    }
    return out;
}

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
    for (auto pos = text.find(from); pos != std::string::npos;
         pos = text.find(from, pos + to.size()))
        text.replace(pos, from.size(), to);
    return text;
}

/// Fills the @NAME@ placeholders of a script template in one pass: inserted text is never
/// scanned again.
std::string fill(std::string_view text,
                 const std::vector<std::pair<std::string, std::string>>& values) {
    std::string out;
    while (!text.empty()) {
        const auto at = text.find('@');
        out += text.substr(0, at);
        if (at == std::string_view::npos)
            break;
        text.remove_prefix(at);
        bool replaced = false;
        for (const auto& [key, value] : values) {
            const std::string token = "@" + key + "@";
            if (text.starts_with(token)) {
                out += value;
                text.remove_prefix(token.size());
                replaced = true;
                break;
            }
        }
        if (!replaced) {
            out += '@';
            text.remove_prefix(1);
        }
    }
    return out;
}

struct ValueInfo {
    std::string name;
    ValueKind kind = ValueKind::text;
    std::vector<std::string> choices;
};

// A value no IsMember set contains.
constexpr std::string_view k_probe = "\x01labctl-completion-probe";

// The choices of an IsMember check. CLI11 2.1 has no accessor for them, and labctl blanks the
// validator's description (one_of), but a rejected value's message still names the set:
// "<value> not in {a,b,c}".
std::vector<std::string> member_choices(CLI::Option& opt) {
    for (int i = 0;; ++i) {
        CLI::Validator* validator = nullptr;
        try {
            validator = opt.get_validator(i);
        } catch (const CLI::OptionNotFound&) {
            break;
        }
        std::string value(k_probe);
        std::string message;
        try {
            message = (*validator)(value);
        } catch (const std::exception&) {
            continue;
        }
        const std::string_view marker = " not in {";
        const auto at = message.rfind(marker);
        if (at != std::string::npos && message.back() == '}') {
            const auto first = at + marker.size();
            return split(message.substr(first, message.size() - first - 1), ',');
        }
    }
    return {};
}

// What an option's value completes to. CLI11 reports the type as "<type name>" followed by
// ":<description>" of each validator that has one ("{a,b,c}" for IsMember). labctl's type names
// say what the value is: "table|json" (choices), STAGE, CHECK, PATH, FILE, DIR, VM.
ValueInfo classify(CLI::Option& opt) {
    ValueInfo v;
    v.choices = member_choices(opt);
    std::string name = opt.get_type_name();
    while (!name.empty() && name.back() == '}') {
        const auto open = name.rfind(":{");
        if (open == std::string::npos)
            break;
        if (v.choices.empty())
            v.choices = split(name.substr(open + 2, name.size() - open - 3), ',');
        name.erase(open);
    }
    v.name = name;
    if (!v.choices.empty()) {
        v.kind = ValueKind::choice;
    } else if (name.find('|') != std::string::npos && name.find('[') == std::string::npos) {
        v.kind = ValueKind::choice;
        v.choices = split(name, '|');
    } else if (name == "STAGE") {
        v.kind = ValueKind::choice;
        v.choices = k_stages;
    } else if (name == "CHECK") {
        v.kind = ValueKind::choice;
        v.choices = config::known_checks();
    } else if (name == "PATH" || name == "FILE" || name == "DIR" || name.ends_with(":FILE") ||
               name.ends_with(":DIR")) {
        v.kind = ValueKind::path;
    } else if (name == "VM") {
        v.kind = ValueKind::vm;
    }
    return v;
}

OptionSpec describe_option(CLI::Option& opt) {
    OptionSpec o;
    for (const auto& s : opt.get_snames())
        o.short_names.push_back("-" + s);
    for (const auto& l : opt.get_lnames())
        o.long_names.push_back("--" + l);
    o.description = opt.get_description();
    o.repeatable = opt.get_multi_option_policy() == CLI::MultiOptionPolicy::TakeAll ||
                   opt.get_expected_max() > 1;
    if (opt.get_items_expected_max() > 0) {
        auto v = classify(opt);
        o.value_name = v.name.empty() ? "VALUE" : v.name;
        o.kind = v.kind;
        o.choices = std::move(v.choices);
    }
    return o;
}

PositionalSpec describe_positional(CLI::Option& opt) {
    PositionalSpec p;
    p.name = opt.get_name(true);
    p.description = opt.get_description();
    auto v = classify(opt);
    p.value_name = v.name.empty() ? p.name : v.name;
    p.kind = v.kind;
    p.choices = std::move(v.choices);
    p.variadic = opt.get_items_expected_max() > 1;
    return p;
}

bool hidden(const CLI::Option* opt) {
    return opt->get_group().empty();
}

// --- bash -------------------------------------------------------------------------------------

std::string sh_quote(const std::string& s) {
    return "'" + replace_all(s, "'", "'\\''") + "'";
}

/// A case pattern "verb:-x | verb:--xx" for every spelling of an option.
std::string bash_pattern(const std::string& verb, const OptionSpec& o) {
    std::vector<std::string> alternatives;
    for (const auto& n : o.names())
        alternatives.push_back(verb + ":" + n);
    return join(alternatives, " | ");
}

std::string bash_value_action(ValueKind kind, const std::vector<std::string>& choices) {
    switch (kind) {
    case ValueKind::choice:
        return "__labctl_words " + sh_quote(join(choices)) + " \"$3\"";
    case ValueKind::path:
        return "__labctl_files \"$3\"";
    case ValueKind::vm:
        return "__labctl_vms \"$3\" \"$4\"";
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
    return join(words);
}

constexpr std::string_view k_bash_template =
    R"SCRIPT(# bash completion for labctl                                  -*- shell-script -*-
# Generated by `labctl completion bash` from labctl's own command tree: do not edit by hand;
# scripts/update-completions regenerates it. Load it with: source <(labctl completion bash)
# Works on its own (bash >= 4) and uses bash-completion's _filedir when that package is loaded.

# Succeeds when option $2 takes a value in the context of verb $1 ("" before the verb).
__labctl_takes_value()
{
    case "$1:$2" in
@TAKES_VALUE@
    esac
    return 1
}

# Sets COMPREPLY to the words of the list $1 that start with $2.
__labctl_words()
{
    mapfile -t COMPREPLY < <(compgen -W "$1" -- "$2")
}

# Sets COMPREPLY to the file names that start with $1.
__labctl_files()
{
    local cur="$1"
    COMPREPLY=()
    if declare -F _filedir >/dev/null 2>&1; then
        _filedir
    else
        compopt -o filenames 2>/dev/null
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
    fi
}

# Sets COMPREPLY to the lab's VM names that start with $1; $2 is the lab file given with -f.
__labctl_vms()
{
    local cur="$1" file="$2"
    local -a args=()
    if [[ -n $file ]]; then
        file="${file#[\"\']}"
        file="${file%[\"\']}"
        [[ $file == "~/"* ]] && file="$HOME/${file#"~/"}"
        args=(--file "$file")
    fi
    __labctl_words "$(command labctl "${args[@]}" __complete vms 2>/dev/null)" "$cur"
}

# Sets COMPREPLY to the values of option $2 of verb $1 that start with $3 ($4: the lab file).
__labctl_option_value()
{
    case "$1:$2" in
@OPTION_VALUES@
        *) COMPREPLY=() ;;
    esac
}

# Sets COMPREPLY to the values of positional argument $2 (from 0) of verb $1 that start with $3
# ($4: the lab file).
__labctl_positional()
{
    case "$1:$2" in
@POSITIONALS@
        *) COMPREPLY=() ;;
    esac
}

# Sets COMPREPLY to the options of verb $1 ("" before the verb) that start with $2. Global
# options are accepted after the verb too.
__labctl_options()
{
    local globals=@GLOBAL_WORDS@
    case "$1" in
@OPTIONS@
        *) __labctl_words "$globals" "$2" ;;
    esac
}

_labctl()
{
    local cword=$COMP_CWORD
    local cur="${COMP_WORDS[cword]}" prev=""
    (( cword > 0 )) && prev="${COMP_WORDS[cword - 1]}"
    local verb="" file="" npos=0 dashdash=0 i w

    # The words before the cursor: the verb, the lab file, how many positional arguments.
    for (( i = 1; i < cword; i++ )); do
        w="${COMP_WORDS[i]}"
        if (( dashdash )); then
            (( npos++ ))
            continue
        fi
        case "$w" in
            --) dashdash=1 ;;
            --file=*) file="${w#--file=}" ;;
            -*)
                if __labctl_takes_value "$verb" "$w"; then
                    (( i++ ))
                    [[ ${COMP_WORDS[i]} == "=" ]] && (( i++ ))
                    if (( i < cword )) && [[ $w == -f || $w == --file ]]; then
                        file="${COMP_WORDS[i]}"
                    fi
                fi
                ;;
            *)
                if [[ -z $verb ]]; then
                    verb="$w"
                else
                    (( npos++ ))
                fi
                ;;
        esac
    done

    # After "--" come the words of the remote command: nothing to complete here.
    if (( dashdash )); then
        COMPREPLY=()
        return 0
    fi

    # The value of an option: "--opt VALUE" or "--opt=VALUE" (bash splits the word at "=").
    local opt=""
    if [[ $cur == "=" && $prev == -* ]]; then
        opt="$prev"
        cur=""
    elif [[ $prev == "=" ]] && (( cword >= 2 )); then
        opt="${COMP_WORDS[cword - 2]}"
    elif [[ $cur == --*=* ]]; then
        # COMP_WORDBREAKS without "=": complete the whole word.
        opt="${cur%%=*}"
        if __labctl_takes_value "$verb" "$opt"; then
            __labctl_option_value "$verb" "$opt" "${cur#*=}" "$file"
            COMPREPLY=("${COMPREPLY[@]/#/$opt=}")
            return 0
        fi
        opt=""
    elif [[ $prev == -* ]]; then
        opt="$prev"
    fi
    if [[ -n $opt ]] && __labctl_takes_value "$verb" "$opt"; then
        __labctl_option_value "$verb" "$opt" "$cur" "$file"
        return 0
    fi

    if [[ $cur == -* ]]; then
        __labctl_options "$verb" "$cur"
    elif [[ -z $verb ]]; then
        __labctl_words @VERBS@ "$cur"
    else
        __labctl_positional "$verb" "$npos" "$cur" "$file"
    fi
    return 0
}

complete -F _labctl labctl
)SCRIPT";

// --- zsh --------------------------------------------------------------------------------------

std::string zsh_quote(const std::string& s) {
    return "'" + replace_all(s, "'", "'\\''") + "'";
}

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
        return "(" + join(escaped) + ")";
    }
    case ValueKind::path:
        return "_files";
    case ValueKind::vm:
        return "_labctl_vms";
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
        o.repeatable ? "*" : (names.size() > 1 ? "(" + join(names) + ")" : "");
    for (const auto& n : names) {
        std::string spec = exclusion + n;
        if (o.takes_value())
            spec += n.starts_with("--") ? "=" : "+";
        spec += "[" + zsh_description(o.description) + "]";
        if (o.takes_value())
            spec += ":" + zsh_message(o.value_name) + ":" + zsh_action(o.kind, o.choices);
        specs.push_back(zsh_quote(spec));
    }
    return specs;
}

std::string zsh_positional_spec(const PositionalSpec& p, std::size_t index) {
    const std::string position = p.variadic ? "*" : std::to_string(index + 1);
    return zsh_quote(position + ":" + zsh_message(p.value_name) + ":" +
                     zsh_action(p.kind, p.choices));
}

constexpr std::string_view k_zsh_template = R"SCRIPT(#compdef labctl
# zsh completion for labctl.
# Generated by `labctl completion zsh` from labctl's own command tree: do not edit by hand;
# scripts/update-completions regenerates it. Install it as _labctl in a directory of $fpath, or
# load it into a running shell with: source <(labctl completion zsh)

# The lab's VM names, from the hidden `labctl __complete vms` (with the -f/--file given, before
# or after the verb).
_labctl_vms() {
  local file=${opt_args[-f]:-${opt_args[--file]:-$_labctl_lab_file}}
  local -a args vms
  file=${(Q)file}
  [[ $file == '~/'* ]] && file=$HOME/${file#'~/'}
  [[ -n $file ]] && args=(--file $file)
  vms=(${(f)"$(_call_program vms labctl ${(q)args} __complete vms 2>/dev/null)"})
  _wanted vms expl 'VM' compadd -a vms
}

_labctl() {
  local curcontext=$curcontext state state_descr line ret=1
  local -A opt_args
  local _labctl_lab_file
  local -a globals
  # Global options: accepted before and after the verb.
  globals=(
@GLOBALS@
  )

  _arguments -C -s -S : \
@ROOT_OPTIONS@
    $globals \
    '(-): :->command' \
    '(-)*:: :->argument' && ret=0

  case $state in
    (command)
      local -a commands
      commands=(
@COMMANDS@
      )
      _describe -t commands 'labctl command' commands && ret=0
      ;;
    (argument)
      _labctl_lab_file=${opt_args[-f]:-$opt_args[--file]}
      curcontext=${curcontext%:*:*}:labctl-$words[1]:
      case $words[1] in
@VERBS@
        (*)
          _arguments -s -S : $globals && ret=0
          ;;
      esac
      ;;
  esac
  return ret
}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  _labctl "$@"
else
  compdef _labctl labctl
fi
)SCRIPT";

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
        args += " -x -a " + fish_quote(join(o.choices));
        break;
    case ValueKind::path:
        args += " -r -F";
        break;
    case ValueKind::vm:
        args += " -x -a '(__labctl_vms)'";
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
        args = " -a " + fish_quote(join(p.choices));
        break;
    case ValueKind::path:
        args = " -F";
        break;
    case ValueKind::vm:
        args = " -a '(__labctl_vms)'";
        break;
    case ValueKind::none:
    case ValueKind::text:
        return {};
    }
    if (!p.description.empty())
        args += " -d " + fish_quote(p.description);
    return args;
}

constexpr std::string_view k_fish_template = R"SCRIPT(# fish completion for labctl.
# Generated by `labctl completion fish` from labctl's own command tree: do not edit by hand;
# scripts/update-completions regenerates it. Load it with: labctl completion fish | source

# Succeeds when option $opt takes a value in the context of verb $verb ("" before the verb).
function __labctl_takes_value --argument-names verb opt
    switch "$verb:$opt"
        case @TAKES_VALUE@
            return 0
    end
    return 1
end

# Reads the command line before the cursor into __labctl_verb (empty before the verb),
# __labctl_npos (how many positional arguments the verb has so far) and __labctl_file (-f/--file).
# Unlike __fish_use_subcommand it knows which options take a value (labctl -f lab.yaml ssh ...).
function __labctl_parse
    set -g __labctl_verb ''
    set -g __labctl_npos 0
    set -g __labctl_file ''
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l skip ''
    set -l dashdash 0
    for t in $tokens
        if test -n "$skip"
            test "$skip" = file; and set __labctl_file $t
            set skip ''
        else if test $dashdash = 1
            set __labctl_npos (math $__labctl_npos + 1)
        else
            switch "$t"
                case --
                    set dashdash 1
                case '--file=*'
                    set __labctl_file (string replace -- --file= '' $t)
                case '-*'
                    if __labctl_takes_value "$__labctl_verb" "$t"
                        set skip value
                        contains -- $t -f --file; and set skip file
                    end
                case '*'
                    if test -z "$__labctl_verb"
                        set __labctl_verb $t
                    else
                        set __labctl_npos (math $__labctl_npos + 1)
                    end
            end
        end
    end
end

# Succeeds before the verb.
function __labctl_needs_verb
    __labctl_parse
    test -z "$__labctl_verb"
end

# Succeeds after verb $verb.
function __labctl_using_verb --argument-names verb
    __labctl_parse
    test "$__labctl_verb" = "$verb"
end

# Succeeds when the next word is positional argument $index (from 0) of verb $verb; with a
# third argument "+", also for every later one.
function __labctl_positional --argument-names verb index more
    __labctl_parse
    test "$__labctl_verb" = "$verb"; or return 1
    test $__labctl_npos -eq $index; and return 0
    test "$more" = +; and test $__labctl_npos -gt $index
end

# The lab's VM names, from the hidden `labctl __complete vms` (with the -f/--file given).
function __labctl_vms
    __labctl_parse
    set -l args
    set -l file (string replace -r '^~/' "$HOME/" -- $__labctl_file)
    test -n "$file"; and set args --file $file
    labctl $args __complete vms 2>/dev/null
end

# No file names unless an option or argument asks for them.
complete -c labctl -f

# Global options: accepted before and after the verb.
@GLOBALS@

# Options only before the verb.
@ROOT_OPTIONS@

# Verbs.
@COMMANDS@
@VERBS@)SCRIPT";

} // namespace

CliSpec describe_cli(CLI::App& root) {
    CliSpec cli;
    cli.program = root.get_name().empty() ? "labctl" : root.get_name();
    const CLI::Option* help = root.get_help_ptr();
    const CLI::Option* help_all = root.get_help_all_ptr();
    for (CLI::Option* opt : root.get_options()) {
        if (hidden(opt) || !opt->nonpositional())
            continue;
        if (opt == help || opt == help_all)
            cli.root_options.push_back(describe_option(*opt));
        else
            cli.global_options.push_back(describe_option(*opt));
    }
    for (CLI::App* sub : root.get_subcommands(
             [](CLI::App* a) { return !a->get_group().empty() && !a->get_name().empty(); })) {
        CommandSpec c;
        c.name = sub->get_name();
        c.description = sub->get_description();
        for (CLI::Option* opt : sub->get_options()) {
            if (hidden(opt))
                continue;
            if (opt->nonpositional())
                c.options.push_back(describe_option(*opt));
            else if (opt->get_positional())
                c.positionals.push_back(describe_positional(*opt));
        }
        // A verb with verbs of its own (`image build`): they complete as its first word, and
        // their options join the verb's, so `labctl image build --<TAB>` offers them.
        PositionalSpec nested{"SUBCOMMAND", "", "SUBCOMMAND", ValueKind::choice, {}, false};
        for (CLI::App* leaf : sub->get_subcommands(
                 [](CLI::App* a) { return !a->get_group().empty() && !a->get_name().empty(); })) {
            nested.choices.push_back(leaf->get_name());
            for (CLI::Option* opt : leaf->get_options()) {
                if (hidden(opt) || !opt->nonpositional())
                    continue;
                auto o = describe_option(*opt);
                const bool known =
                    std::any_of(c.options.begin(), c.options.end(),
                                [&](const OptionSpec& have) { return have.names() == o.names(); });
                if (!known)
                    c.options.push_back(std::move(o));
            }
        }
        if (!nested.choices.empty())
            c.positionals.insert(c.positionals.begin(), std::move(nested));
        cli.commands.push_back(std::move(c));
    }
    return cli;
}

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
            takes_value.push_back(fmt::format("        {}) return 0 ;;", join(patterns, " | ")));
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
    return fill(k_bash_template, {{"TAKES_VALUE", join(takes_value, "\n")},
                                  {"OPTION_VALUES", join(option_values, "\n")},
                                  {"POSITIONALS", join(positionals, "\n")},
                                  {"GLOBAL_WORDS", sh_quote(option_words(cli.global_options))},
                                  {"OPTIONS", join(options, "\n")},
                                  {"VERBS", sh_quote(join(verbs))}});
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
        commands.push_back("        " + zsh_quote(zsh_message(c.name) + ":" + c.description));
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
    return fill(k_zsh_template, {{"GLOBALS", join(globals, "\n")},
                                 {"ROOT_OPTIONS", join(root_options, "\n")},
                                 {"COMMANDS", join(commands, "\n")},
                                 {"VERBS", join(verbs, "\n")}});
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
    return fill(k_fish_template, {{"TAKES_VALUE", join(takes_value)},
                                  {"GLOBALS", join(globals, "\n")},
                                  {"ROOT_OPTIONS", join(root_options, "\n")},
                                  {"COMMANDS", join(commands, "\n")},
                                  {"VERBS", join(verbs, "")}});
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
                "choose one of: " + join(completion_shells(), ", "));
}

} // namespace labctl::cli
