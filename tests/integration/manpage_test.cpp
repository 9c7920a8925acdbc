// man/labctl.1 against the binary: every verb and its options, every global flag, every
// environment variable and every exit code is documented, and groff/man render it cleanly.

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <labctl/config/loader.hpp>
#include <labctl/core/exit_code.hpp>
#include <labctl/core/process.hpp>

#include "skip.hpp"
#include "support.hpp"

using namespace labctl;
using labctl::test::read_file;
using labctl::test::run_labctl;
using labctl::test::source_dir;

namespace {

std::filesystem::path man_page() {
    return source_dir() / "man" / "labctl.1";
}

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        out.push_back(line);
    return out;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
    for (auto pos = text.find(from); pos != std::string::npos;
         pos = text.find(from, pos + to.size()))
        text.replace(pos, from.size(), to);
    return text;
}

/// The man page's source with roff's "\-" as "-" and without "\&", so names can be searched.
const std::string& man_text() {
    static const std::string text = [] {
        std::string t = read_file(man_page());
        t = replace_all(std::move(t), "\\-", "-");
        return replace_all(std::move(t), "\\&", "");
    }();
    return text;
}

/// The text from the line starting with `heading` up to the next line starting with one of
/// `ends` (or the end).
std::string section(const std::string& text, const std::string& heading,
                    const std::vector<std::string>& ends) {
    std::string out;
    bool inside = false;
    for (const auto& line : lines(text)) {
        if (inside) {
            for (const auto& e : ends)
                if (line.starts_with(e))
                    return out;
            out += line + "\n";
        } else if (line.starts_with(heading)) {
            inside = true;
        }
    }
    return out;
}

std::string man_section(const std::string& name) {
    const std::string quoted = name.find(' ') == std::string::npos ? name : "\"" + name + "\"";
    return section(man_text(), ".SH " + quoted, {".SH "});
}

/// The text of `labctl VERB`'s subsection of COMMANDS.
std::string verb_subsection(const std::string& verb) {
    const auto commands = man_section("COMMANDS");
    for (const auto& line : lines(commands)) {
        if (line.starts_with(".SS \"labctl " + verb + " ") ||
            line.starts_with(".SS \"labctl " + verb + "\""))
            return section(commands, line, {".SS ", ".SH "}) + line;
    }
    return {};
}

/// True when `name` (an option or word) occurs in `text` as a whole token.
bool mentions(const std::string& text, const std::string& name) {
    const std::regex re("(^|[^A-Za-z0-9_-])" +
                        std::regex_replace(name, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
                        "($|[^A-Za-z0-9_-])");
    return std::regex_search(text, re);
}

/// The lines of a CLI11 help section ("Options:", "Subcommands:") of `labctl args... --help`.
std::vector<std::string> help_section(const std::vector<std::string>& args,
                                      const std::string& title) {
    auto argv = args;
    argv.push_back("--help");
    const auto r = run_labctl(argv);
    REQUIRE(r.exit_code == 0);
    std::vector<std::string> out;
    bool inside = false;
    for (const auto& line : lines(r.out)) {
        if (line == title) {
            inside = true;
        } else if (inside) {
            if (line.empty())
                break;
            out.push_back(line);
        }
    }
    return out;
}

/// Verbs listed by `labctl --help` (hidden ones are not).
std::vector<std::string> verbs() {
    std::vector<std::string> out;
    for (const auto& line : help_section({}, "Subcommands:"))
        if (line.size() > 2 && line[2] != ' ')
            out.push_back(line.substr(2, line.find(' ', 2) - 2));
    REQUIRE(out.size() >= 10);
    return out;
}

/// Option names ("-f", "--file") listed in the help of `labctl args...`.
std::vector<std::string> option_names(const std::vector<std::string>& args) {
    std::vector<std::string> out;
    for (const auto& line : help_section(args, "Options:")) {
        if (!line.starts_with("  -"))
            continue; // a wrapped description
        std::string names = line.substr(2, line.find(' ', 2) - 2);
        std::istringstream in(names);
        for (std::string n; std::getline(in, n, ',');)
            out.push_back(n);
    }
    return out;
}

} // namespace

TEST_CASE("the man page has the standard sections in order", "[manpage]") {
    REQUIRE(std::filesystem::exists(man_page()));
    const auto& text = man_text();
    CHECK(text.find(".TH LABCTL 1 ") != std::string::npos);
    std::string::size_type previous = 0;
    for (const std::string heading : {".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION", ".SH COMMANDS",
                                      ".SH OPTIONS", ".SH ENVIRONMENT", ".SH FILES",
                                      ".SH \"EXIT STATUS\"", ".SH EXAMPLES", ".SH \"SEE ALSO\""}) {
        INFO(heading);
        const auto at = text.find("\n" + heading + "\n");
        REQUIRE(at != std::string::npos);
        CHECK(at > previous);
        previous = at;
    }
}

TEST_CASE("the man page documents every verb labctl registers", "[manpage]") {
    for (const auto& verb : verbs()) {
        INFO("man/labctl.1 has no .SS \"labctl " << verb << " ...\" subsection under COMMANDS");
        CHECK_FALSE(verb_subsection(verb).empty());
    }
    CHECK(verb_subsection("__complete").empty()); // hidden
}

TEST_CASE("the man page documents every option of every verb", "[manpage]") {
    for (const auto& verb : verbs()) {
        const auto text = verb_subsection(verb);
        for (const auto& name : option_names({verb})) {
            if (name == "-h" || name == "--help" || name == "--help-all")
                continue; // documented once, for every command
            INFO("labctl " << verb << " " << name << " is not documented in its subsection");
            CHECK(mentions(text, name));
        }
    }
}

TEST_CASE("the man page documents every global flag", "[manpage]") {
    const auto options = man_section("OPTIONS");
    const auto names = option_names({});
    CHECK(names.size() >= 8);
    for (const auto& name : names) {
        INFO("global option " << name << " is missing from OPTIONS");
        CHECK(mentions(options, name));
    }
}

TEST_CASE("the man page documents every environment variable labctl reads", "[manpage]") {
    const auto environment = man_section("ENVIRONMENT");
    std::vector<std::string> names;
    for (const auto& var : config::environment_variables())
        names.push_back(var.name);
    // read outside the config module: templates, terminal and logging
    for (const std::string extra : {"LABCTL_TEMPLATE_DIR", "NO_COLOR", "CI"})
        names.push_back(extra);
    CHECK(names.size() >= 13);
    for (const auto& name : names) {
        INFO(name << " needs a .TP/.B entry under ENVIRONMENT");
        CHECK(environment.find("\n.B " + name + "\n") != std::string::npos);
    }
}

TEST_CASE("the man page documents every exit code with its number and name", "[manpage]") {
    const auto status = man_section("EXIT STATUS");
    for (const auto& e : k_exit_codes) {
        const std::string entry =
            ".BR " + std::to_string(to_int(e.code)) + " \" (" + std::string(e.name) + ")\"";
        INFO("EXIT STATUS needs the entry: " << entry);
        CHECK(status.find(entry) != std::string::npos);
    }
}

TEST_CASE("the man page lists labctl's files and a Jenkins example", "[manpage]") {
    const auto files = man_section("FILES");
    for (const std::string f : {"lab.yaml", ".labctl/", ".labctl/id_ed25519", ".labctl/known_hosts",
                                ".labctl/reports/", "$XDG_STATE_HOME/labctl/"}) {
        INFO(f);
        CHECK(files.find("\n.I " + f + "\n") != std::string::npos);
    }
    const auto examples = man_section("EXAMPLES");
    CHECK(examples.find("Jenkins") != std::string::npos);
    CHECK(examples.find("pipeline {") != std::string::npos);
}

TEST_CASE("groff formats the man page without warnings", "[manpage]") {
    labctl::test::require_program("groff");
    const auto r = run_process({"groff", "-ww", "-man", "-Tutf8", man_page().string()});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.err.empty());
    CHECK_FALSE(r.out.empty());
}

TEST_CASE("man renders the man page", "[manpage]") {
    labctl::test::require_program("man");
    ProcessOptions po;
    po.env = {{"MANPAGER", "cat"}, {"PAGER", "cat"}, {"MANWIDTH", "80"}};
    po.timeout = std::chrono::seconds(60);
    const auto r = run_process({"man", "-l", man_page().string()}, po);
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.err.empty());
    CHECK(r.out.find("LABCTL(1)") != std::string::npos);
    CHECK(r.out.find("EXIT STATUS") != std::string::npos);
    CHECK(r.out.find("labctl ssh VM") != std::string::npos);
    for (const auto& line : lines(r.out)) {
        const auto columns = std::count_if(line.begin(), line.end(), [](char c) {
            return (static_cast<unsigned char>(c) & 0xC0) != 0x80; // not a UTF-8 continuation
        });
        INFO(line);
        CHECK(columns <= 80);
    }
}
