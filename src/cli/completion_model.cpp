// The walk of the CLI11 command tree into the plain description (CliSpec) the per-shell
// generators in completion.cpp render. The choices of an option come from its one_of check
// (app.hpp); nothing here reads CLI11's messages.

#include <algorithm>
#include <utility>

#include "app.hpp"
#include "completion.hpp"

namespace labctl::cli {

std::vector<std::string> OptionSpec::names() const {
    std::vector<std::string> all = short_names;
    all.insert(all.end(), long_names.begin(), long_names.end());
    return all;
}

namespace {

struct ValueInfo {
    std::string name;
    ValueKind kind = ValueKind::text;
    std::vector<std::string> choices;
};

// What an option's value completes to: the choices of its one_of check, else what its type name
// says (labctl's type names: PATH, FILE, DIR, VM, [USER@]HOST[:PORT]; CLI::ExistingFile-style
// checks add ":FILE").
// one_of blanks its validator's description, so the type name is the one the verb set.
ValueInfo classify(CLI::Option& opt) {
    ValueInfo v;
    v.name = opt.get_type_name();
    v.choices = one_of_choices(opt);
    const std::string& name = v.name;
    if (!v.choices.empty())
        v.kind = ValueKind::choice;
    else if (name == "PATH" || name == "FILE" || name == "DIR" || name.ends_with(":FILE") ||
             name.ends_with(":DIR"))
        v.kind = ValueKind::path;
    else if (name == "VM")
        v.kind = ValueKind::vm;
    else if (name == "[USER@]HOST[:PORT]")
        v.kind = ValueKind::host;
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

bool visible_verb(CLI::App* a) {
    return !a->get_group().empty() && !a->get_name().empty();
}

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
    for (CLI::App* sub : root.get_subcommands(visible_verb)) {
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
        for (CLI::App* leaf : sub->get_subcommands(visible_verb)) {
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

} // namespace labctl::cli
