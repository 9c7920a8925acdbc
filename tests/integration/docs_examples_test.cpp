// Every labctl command the README and the man page show must work as written: each is extracted
// from the documents (README's sh blocks, the man page's EXAMPLES), parsed by the real CLI and
// then run with LABCTL_PARSE_ONLY=config, which loads the lab file with the command's flags and
// environment layered on (a documented `--host admin@host:22` once failed exactly there). The
// commands that need no remote host also run for real in a lab `labctl init` made, on libvirt's
// test driver. The command lines in the comments of examples/lab.yaml, examples/lab-local.yaml
// and templates/lab.yaml go through the same checks (in a copy of examples/ and stacks/, and in
// the lab `labctl init` made), and so do the comments that tell how to try them without a
// hypervisor. `labctl --help` and every subcommand's --help show no example command line: the
// test that says so fails as soon as one appears, so that it gets extracted and run too.

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <catch2/catch.hpp>
#include <regex>
#include <set>
#include <sstream>

#include "support.hpp"

using namespace labctl;

namespace {

using Argv = std::vector<std::string>;

struct Example {
    std::string where; ///< "README.md:56"
    Argv argv;         ///< after "labctl"
};

/// Shell words of `text` up to the first operator (|, ||, &&, >, ;, #); quotes removed.
Argv words_of(const std::string& text) {
    Argv out;
    std::string word;
    bool in_word = false;
    char quote = 0;
    for (std::size_t i = 0; i <= text.size(); ++i) {
        const char c = i < text.size() ? text[i] : ' ';
        if (quote) {
            if (c == quote)
                quote = 0;
            else
                word += c;
            continue;
        }
        if (c == '\'' || c == '"') {
            quote = c;
            in_word = true;
            continue;
        }
        if (c == ' ' || c == '\t') {
            if (in_word)
                out.push_back(word);
            word.clear();
            in_word = false;
            continue;
        }
        if (c == '|' || c == '&' || c == '>' || c == ';' || c == '#' || c == ')') {
            if (in_word)
                out.push_back(word);
            return out;
        }
        word += c;
        in_word = true;
    }
    return out;
}

/// `labctl ...` at the start of `line` or after "<(" (process substitution): its words.
std::optional<Argv> labctl_call(const std::string& line) {
    static const std::regex k_call(R"((?:^|<\()\s*labctl\s+(.*))");
    std::smatch m;
    if (!std::regex_search(line, m, k_call))
        return std::nullopt;
    return words_of(m[1].str());
}

std::vector<Example> readme_examples() {
    std::vector<Example> out;
    std::istringstream in(test::read_file(test::source_dir() / "README.md"));
    bool in_sh = false;
    int number = 0;
    for (std::string line; std::getline(in, line);) {
        ++number;
        if (line.rfind("```", 0) == 0) {
            in_sh = !in_sh && line.rfind("```sh", 0) == 0;
            continue;
        }
        if (in_sh)
            if (auto argv = labctl_call(line))
                out.push_back({fmt::format("README.md:{}", number), *argv});
    }
    return out;
}

/// The man page's EXAMPLES: lines of its .nf blocks, with roff escapes undone and `\e` line
/// continuations joined; labctl calls inside Jenkins `sh '...'` steps count too.
std::vector<Example> manpage_examples() {
    std::vector<Example> out;
    std::istringstream in(test::read_file(test::source_dir() / "man" / "labctl.1"));
    bool in_examples = false, in_block = false;
    int number = 0, start = 0;
    std::string pending;
    const auto unescape = [](std::string s) {
        for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
                 {"\\-", "-"}, {"\\(aq", "'"}, {"\\(dq", "\""}, {"\\&", ""}})
            for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at))
                s.replace(at, from.size(), to);
        return s;
    };
    for (std::string line; std::getline(in, line);) {
        ++number;
        if (line.rfind(".SH", 0) == 0) {
            in_examples = line == ".SH EXAMPLES";
            continue;
        }
        if (!in_examples)
            continue;
        if (line == ".nf" || line == ".fi") {
            in_block = line == ".nf";
            continue;
        }
        if (!in_block)
            continue;
        line = unescape(line);
        if (pending.empty())
            start = number;
        if (line.size() >= 2 && line.compare(line.size() - 2, 2, "\\e") == 0) {
            pending += line.substr(0, line.size() - 2) + " ";
            continue;
        }
        line = pending + line;
        pending.clear();
        // Jenkins steps: sh 'labctl ...' or script: 'labctl ...'
        static const std::regex k_step(R"('(labctl [^']*)')");
        std::smatch m;
        const std::string text = std::regex_search(line, m, k_step) ? m[1].str() : line;
        const auto trimmed = text.substr(std::min(text.find_first_not_of(' '), text.size()));
        if (auto argv = labctl_call(trimmed))
            out.push_back({fmt::format("man/labctl.1:{}", start), *argv});
    }
    return out;
}

/// A lab made by `labctl init` in <tmp>/work, with ../other/lab.yaml beside it (an example opens
/// another lab's file) and the test driver as its hypervisor.
struct InitLab {
    test::TempDir dir;
    std::filesystem::path work = dir.path() / "work";
    std::map<std::string, std::string> env{{"LABCTL_LIBVIRT_URI", "test:///default"},
                                           {"LABCTL_POOL", "default-pool"},
                                           {"NO_COLOR", "1"}};
    InitLab() {
        std::filesystem::create_directories(work);
        const auto r = run({"init", "--project", "demo"});
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
        std::filesystem::create_directories(dir.path() / "other");
        std::filesystem::copy_file(work / "lab.yaml", dir.path() / "other" / "lab.yaml");
        std::filesystem::copy(work / ".labctl", dir.path() / "other" / ".labctl",
                              std::filesystem::copy_options::recursive);
    }
    ProcessResult run(const Argv& argv, std::map<std::string, std::string> extra = {}) const {
        ProcessOptions o;
        o.env = env;
        for (auto& [k, v] : extra)
            o.env[k] = v;
        o.cwd = work.string();
        o.timeout = std::chrono::seconds(60);
        return test::run_labctl(argv, o);
    }
};

/// The command lines in the comments of a lab file, as in examples/lab.yaml's header:
/// `#   labctl validate -f examples/lab.yaml     # check this file`. Prose that mentions labctl
/// ("# ... 'labctl down' removes ...") is not indented like a command and is not taken.
std::vector<Example> lab_file_examples(const std::string& relative) {
    std::vector<Example> out;
    std::istringstream in(test::read_file(test::source_dir() / relative));
    static const std::regex k_command(R"(^#\s{2,}(labctl\s.*))");
    int number = 0;
    for (std::string line; std::getline(in, line);) {
        ++number;
        std::smatch m;
        if (std::regex_search(line, m, k_command))
            if (auto argv = labctl_call(m[1].str()))
                out.push_back({fmt::format("{}:{}", relative, number), *argv});
    }
    return out;
}

/// A copy of examples/ and stacks/ in a temporary directory, so that the example files' relative
/// paths resolve as in the source tree and `labctl init -f examples/...` writes its key pair into
/// the copy. libvirt is the test driver, as for InitLab.
struct ExamplesCopy {
    test::TempDir dir;
    std::map<std::string, std::string> env{{"LABCTL_LIBVIRT_URI", "test:///default"},
                                           {"LABCTL_POOL", "default-pool"},
                                           {"NO_COLOR", "1"}};
    ExamplesCopy() {
        std::filesystem::create_directories(dir.path() / "examples");
        for (const char* name : {"lab.yaml", "lab-local.yaml"})
            std::filesystem::copy_file(test::source_dir() / "examples" / name,
                                       dir.path() / "examples" / name);
        std::filesystem::copy(test::source_dir() / "stacks", dir.path() / "stacks",
                              std::filesystem::copy_options::recursive);
    }
    ProcessResult run(const Argv& argv, std::map<std::string, std::string> extra = {}) const {
        ProcessOptions o;
        o.env = env;
        for (auto& [k, v] : extra)
            o.env[k] = v;
        o.cwd = dir.path().string();
        o.timeout = std::chrono::seconds(60);
        return test::run_labctl(argv, o);
    }
};

/// Runs one shown command the way the README's are checked: parsed (LABCTL_PARSE_ONLY=1), loaded
/// with its lab file, flags and environment (LABCTL_PARSE_ONLY=config), and, when it needs no
/// remote host and no hypervisor beyond the test driver (`runnable`), run as written.
template <typename LabDir>
void check_shown_command(const LabDir& lab, const Example& e, const std::set<std::string>& runnable,
                         int& ran) {
    INFO(fmt::format("{}: labctl {}", e.where, fmt::join(e.argv, " ")));
    const auto parsed = lab.run(e.argv, {{"LABCTL_PARSE_ONLY", "1"}});
    CHECK(parsed.exit_code == 0);
    CHECK(parsed.err.empty());
    const auto checked = lab.run(e.argv, {{"LABCTL_PARSE_ONLY", "config"}});
    INFO(checked.err);
    CHECK(checked.exit_code == 0);
    if (e.argv.empty() || !runnable.count(e.argv.front()))
        return;
    const auto r = lab.run(e.argv);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    ++ran;
}

/// The subcommands listed in the "Subcommands:" section of a --help text.
std::vector<std::string> subcommands_in(const std::string& help) {
    std::vector<std::string> out;
    std::istringstream in(help);
    bool listing = false;
    for (std::string line; std::getline(in, line);) {
        if (line == "Subcommands:") {
            listing = true;
            continue;
        }
        if (listing && (line.size() < 3 || line[0] != ' ' || line[2] == ' '))
            break;
        if (listing)
            out.push_back(words_of(line).at(0));
    }
    return out;
}

/// Example command lines in a --help text: `labctl` followed by a subcommand or an option, as in
/// "e.g. labctl up -f lab.yaml". CLI11's "Usage: labctl ..." line and placeholders such as
/// "labctl <command>" are not examples.
std::vector<std::string> help_examples(const std::string& help,
                                       const std::set<std::string>& subcommands) {
    std::vector<std::string> out;
    std::istringstream in(help);
    static const std::regex k_call(R"(\blabctl\s+([^\s'"]+))");
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("Usage: ", 0) == 0)
            continue;
        for (std::sregex_iterator it(line.begin(), line.end(), k_call), end; it != end; ++it) {
            const std::string next = (*it)[1].str();
            if (next.front() == '-' || subcommands.count(next))
                out.push_back(line);
        }
    }
    return out;
}

} // namespace

TEST_CASE("the README and the man page show labctl commands, and the extraction finds them",
          "[docs]") {
    const auto readme = readme_examples();
    const auto man = manpage_examples();
    std::set<std::string> shown;
    for (const auto& e : readme)
        shown.insert(fmt::format("{}", fmt::join(e.argv, " ")));
    for (const auto& e : man)
        shown.insert(fmt::format("{}", fmt::join(e.argv, " ")));
    INFO(fmt::format("{}", fmt::join(shown, "\n")));
    CHECK(readme.size() >= 8);
    CHECK(man.size() >= 10);
    for (const char* expected :
         {"harden --host admin@host:22", "deploy --host admin@host", "completion bash",
          "verify --host ops@192.0.2.10 --only stack.health --only trace.e2e --output json",
          "up --from deploy --junit reports/labctl.xml", "-f ../other/lab.yaml ssh lab1",
          "verify --junit verify.xml", "deploy --log-format json", "plan --detailed-exitcode"})
        CHECK(shown.count(expected) == 1);
}

TEST_CASE("every command the README and the man page show parses and is accepted with its lab "
          "file, flags and environment",
          "[docs]") {
    InitLab lab;
    auto examples = readme_examples();
    for (auto& e : manpage_examples())
        examples.push_back(std::move(e));
    for (const auto& e : examples) {
        INFO(fmt::format("{}: labctl {}", e.where, fmt::join(e.argv, " ")));
        const auto parsed = lab.run(e.argv, {{"LABCTL_PARSE_ONLY", "1"}});
        CHECK(parsed.exit_code == 0);
        CHECK(parsed.err.empty());
        // The Jenkins example sets LAB_HOST for its stages: the same value must be accepted.
        const auto checked = lab.run(
            e.argv, {{"LABCTL_PARSE_ONLY", "config"}, {"LAB_HOST", "jenkins@192.0.2.10:22"}});
        INFO(checked.err);
        CHECK(checked.exit_code == 0);
    }
}

TEST_CASE("the shown commands that need no remote host run as written on the test driver",
          "[docs]") {
    InitLab lab;
    // What each verb answers on a fresh lab: plan has changes to show (10 with
    // --detailed-exitcode); the rest succeed.
    const std::set<std::string> runnable{"validate", "plan", "completion", "status", "version"};
    int ran = 0;
    auto examples = readme_examples();
    for (auto& e : manpage_examples())
        examples.push_back(std::move(e));
    for (const auto& e : examples) {
        if (e.argv.empty() || !runnable.count(e.argv.front()))
            continue;
        INFO(fmt::format("{}: labctl {}", e.where, fmt::join(e.argv, " ")));
        const auto r = lab.run(e.argv);
        INFO(r.err);
        const bool detailed =
            std::find(e.argv.begin(), e.argv.end(), "--detailed-exitcode") != e.argv.end();
        CHECK(r.exit_code == (detailed ? 10 : 0));
        CHECK_FALSE(r.out.empty());
        ++ran;
    }
    CHECK(ran >= 6);
}

TEST_CASE("the lab.yaml comments that say how to try without a hypervisor work as written",
          "[docs]") {
    // examples/lab.yaml: "to try without a hypervisor: LABCTL_LIBVIRT_URI=... LABCTL_POOL=..."
    const auto example = test::read_file(test::source_dir() / "examples" / "lab.yaml");
    static const std::regex k_try(R"(LABCTL_LIBVIRT_URI=(\S+) LABCTL_POOL=(\S+))");
    std::smatch m;
    REQUIRE(std::regex_search(example, m, k_try));
    ProcessOptions o;
    o.env = {{"LABCTL_LIBVIRT_URI", m[1].str()}, {"LABCTL_POOL", m[2].str()}};
    const auto plan = test::run_labctl(
        {"plan", "-f", (test::source_dir() / "examples" / "lab.yaml").string()}, o);
    INFO(plan.err);
    CHECK(plan.exit_code == 0);
    CHECK(plan.out.find("Plan:") != std::string::npos);

    // templates/lab.yaml (what `labctl init` writes): "test:///default (... its pool is X)"
    const auto tmpl = test::read_file(test::source_dir() / "templates" / "lab.yaml");
    static const std::regex k_pool(R"((test:///default) \(no hypervisor; its pool is (\S+)\))");
    REQUIRE(std::regex_search(tmpl, m, k_pool));
    InitLab lab;
    lab.env = {{"LABCTL_LIBVIRT_URI", m[1].str()}, {"LABCTL_POOL", m[2].str()}};
    const auto init_plan = lab.run({"plan"});
    INFO(init_plan.err);
    CHECK(init_plan.exit_code == 0);
}

TEST_CASE("the lab files' comments show labctl commands, and the extraction finds them", "[docs]") {
    std::set<std::string> shown;
    for (const char* file : {"examples/lab.yaml", "examples/lab-local.yaml", "templates/lab.yaml"})
        for (const auto& e : lab_file_examples(file))
            shown.insert(fmt::format("{}: {}", file, fmt::join(e.argv, " ")));
    INFO(fmt::format("{}", fmt::join(shown, "\n")));
    CHECK(shown == std::set<std::string>{
                       "examples/lab.yaml: validate -f examples/lab.yaml",
                       "examples/lab.yaml: init -f examples/lab.yaml",
                       "examples/lab.yaml: up -f examples/lab.yaml",
                       "examples/lab-local.yaml: validate -f examples/lab-local.yaml",
                       "examples/lab-local.yaml: init -f examples/lab-local.yaml",
                       "examples/lab-local.yaml: up -f examples/lab-local.yaml",
                       "templates/lab.yaml: validate",
                       "templates/lab.yaml: plan",
                       "templates/lab.yaml: up",
                       "templates/lab.yaml: down",
                   });
}

TEST_CASE("every command the examples' comments show is accepted with its lab file, in the order "
          "shown, and the local ones run as written",
          "[docs]") {
    // From the directory the paths are relative to (the source tree's root, here a copy), in the
    // order a reader follows them: validate before init made the key pair, then up.
    ExamplesCopy copy;
    const std::set<std::string> runnable{"validate", "init"};
    int ran = 0;
    for (const char* file : {"examples/lab.yaml", "examples/lab-local.yaml"}) {
        const auto examples = lab_file_examples(file);
        REQUIRE(examples.size() == 3);
        for (const auto& e : examples)
            check_shown_command(copy, e, runnable, ran);
        CHECK(std::filesystem::exists(copy.dir.path() / "examples" / ".labctl" / "id_ed25519"));
    }
    CHECK(ran == 4);
}

TEST_CASE("every command templates/lab.yaml's comments show is accepted in the lab labctl init "
          "wrote, and validate and plan run as written on the test driver",
          "[docs]") {
    InitLab lab;
    const std::set<std::string> runnable{"validate", "plan"};
    int ran = 0;
    const auto examples = lab_file_examples("templates/lab.yaml");
    REQUIRE(examples.size() == 4);
    for (const auto& e : examples)
        check_shown_command(lab, e, runnable, ran);
    CHECK(ran == 2);
}

TEST_CASE("labctl --help and every subcommand's --help show no example command line", "[docs]") {
    // If one ever does, this fails: extract and run it like the README's examples instead.
    const auto top = test::run_labctl({"--help"});
    REQUIRE(top.exit_code == 0);
    auto names = subcommands_in(top.out);
    const std::set<std::string> subcommands(names.begin(), names.end());
    CHECK(subcommands.size() >= 15);
    CHECK(subcommands.count("up") == 1);
    std::vector<Argv> helps{{"--help"}};
    for (const auto& name : names) {
        helps.push_back({name, "--help"});
        // Nested subcommands (image build).
        const auto nested = test::run_labctl({name, "--help"});
        for (const auto& sub : subcommands_in(nested.out))
            helps.push_back({name, sub, "--help"});
    }
    CHECK(helps.size() >= 17);
    for (const auto& argv : helps) {
        const auto r = test::run_labctl(argv);
        INFO(fmt::format("labctl {}\n{}", fmt::join(argv, " "), r.out));
        CHECK(r.exit_code == 0);
        CHECK_FALSE(r.out.empty());
        CHECK(help_examples(r.out, subcommands).empty());
    }
    // The detector sees an example where there is one (this test could fail).
    CHECK(help_examples("  --host HOST   e.g. labctl harden --host admin@host:22\n", subcommands)
              .size() == 1);
    CHECK(help_examples("Usage: labctl up [OPTIONS]\nRun 'labctl <command> --help'\n", subcommands)
              .empty());
}
