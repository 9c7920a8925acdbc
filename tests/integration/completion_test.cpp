// Shell completion: the committed scripts are exactly what `labctl completion <shell>` prints, the
// scripts pass `bash -n`, shellcheck, `zsh -n` and `fish -n`, their bodies are templates a site can
// override, every choice they offer is a value labctl accepts, and they really complete in bash,
// zsh and fish (verbs, options, option values, file names, the lab's VM names through the hidden
// `labctl __complete vms` and its SSH destinations for --host through `labctl __complete hosts`).

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <labctl/config/lab_spec.hpp>
#include <labctl/core/process.hpp>

#include "completion_shells.hpp"
#include "skip.hpp"
#include "support.hpp"

using namespace labctl;
using labctl::test::labctl_binary;
using labctl::test::read_file;
using labctl::test::run_labctl;
using labctl::test::source_dir;
using labctl::test::TempDir;
using namespace labctl::test::completion;

namespace {

const std::string k_lab_yaml = "version: 1\n"
                               "project: demo\n"
                               "vms:\n"
                               "  - name: alpha\n"
                               "  - name: beta\n";

// A lab with SSH destinations of every kind: VMs at their own address (mode nat), deploy.host, and
// a jump host that is not a destination.
const std::string k_hosts_lab_yaml = "version: 1\n"
                                     "project: demo\n"
                                     "ssh:\n"
                                     "  user: admin\n"
                                     "  jump: ops@jump.example.org:2200\n"
                                     "deploy:\n"
                                     "  host: deployer@192.0.2.7\n"
                                     "vms:\n"
                                     "  - name: alpha\n"
                                     "    ip: 10.66.77.10\n"
                                     "  - name: beta\n"
                                     "    ip: 10.66.77.11\n";
const Words k_destinations{"admin@10.66.77.10:22", "admin@10.66.77.11:22", "deployer@192.0.2.7:22"};
const Words k_admin_destinations{"admin@10.66.77.10:22", "admin@10.66.77.11:22"};

const std::vector<std::string> k_stages{"provision", "harden", "deploy", "verify"};

/// The verbs `labctl --help` lists (hidden ones are not listed).
std::vector<std::string> help_verbs() {
    const auto r = run_labctl({"--help"});
    REQUIRE(r.exit_code == 0);
    std::vector<std::string> verbs;
    bool in_list = false;
    for (const auto& line : lines(r.out)) {
        if (line == "Subcommands:") {
            in_list = true;
            continue;
        }
        if (in_list && line.starts_with("  ") && line.size() > 2 && line[2] != ' ')
            verbs.push_back(line.substr(2, line.find(' ', 2) - 2));
        else if (in_list)
            break;
    }
    REQUIRE(verbs.size() >= 10);
    return verbs;
}

/// Skips (or, under CI=true or LABCTL_NO_SKIP=1, fails) unless `program` is on PATH. CI installs
/// every checker the completion scripts are held to (scripts/install-deps).
void require_tool(const std::string& program) {
    const char* ci = std::getenv("CI");
    if (ci && std::string(ci) == "true" && !find_program(program))
        FAIL(program << " is not installed, and CI=true allows no skip (scripts/install-deps)");
    labctl::test::require_program(program);
}

/// Runs a syntax checker or linter on a script, with a deadline.
ProcessResult check_script(const std::vector<std::string>& argv) {
    ProcessOptions po;
    po.env = shell_env();
    po.timeout = std::chrono::seconds(60);
    const auto r = run_process(argv, po);
    INFO(argv.front() << " stdout: " << r.out << "\nstderr: " << r.err);
    CHECK_FALSE(r.timed_out);
    return r;
}

void check_contains_all(const std::vector<std::string>& offered,
                        const std::vector<std::string>& expected) {
    const auto have = word_set(offered);
    for (const auto& e : expected) {
        INFO("offered: " << Catch::Detail::stringify(offered));
        CHECK(have.contains(e));
    }
}

} // namespace

TEST_CASE("the committed completion scripts are exactly what labctl completion prints",
          "[completion]") {
    const std::vector<std::pair<std::string, std::string>> files{
        {"bash", "labctl.bash"}, {"zsh", "_labctl"}, {"fish", "labctl.fish"}};
    for (const auto& [shell, name] : files) {
        const auto path = source_dir() / "completions" / name;
        const auto generated = completion_script(shell);
        INFO("completions/" << name << " differs from `labctl completion " << shell
                            << "`: run scripts/update-completions (it regenerates completions/ "
                               "from the built binary) and commit the result");
        REQUIRE(std::filesystem::exists(path));
        const auto committed = lines(read_file(path));
        const auto expected = lines(generated);
        std::size_t i = 0;
        while (i < committed.size() && i < expected.size() && committed[i] == expected[i])
            ++i;
        INFO("first difference at non-empty line "
             << i + 1 << ":\n  committed: " << (i < committed.size() ? committed[i] : "(end)")
             << "\n  generated: " << (i < expected.size() ? expected[i] : "(end)"));
        const bool identical = read_file(path) == generated;
        CHECK(identical);
    }
}

TEST_CASE("completion rejects an unknown shell as a usage error", "[completion]") {
    const auto r = run_labctl({"completion", "tcsh"});
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK(r.err.find("labctl: error: ") != std::string::npos);
}

TEST_CASE("every choice the completions offer is a value labctl accepts", "[completion]") {
    // The choices come from each option's own validator (one_of): read them back from the bash
    // script's case arms ("verb:--opt) __labctl_words 'a b' ..." and "verb:0) ...") and parse a
    // command line with each one, and with a value outside the set, without running it.
    struct Arm {
        std::string verb, what;
        std::vector<std::string> choices;
    };
    std::vector<Arm> arms;
    const std::string marker = ") __labctl_words '";
    for (const auto& line : lines(completion_script("bash"))) {
        const auto at = line.find(marker);
        const auto first = line.find_first_not_of(' ');
        if (at == std::string::npos || first >= at)
            continue;
        const auto list_end = line.find('\'', at + marker.size());
        REQUIRE(list_end != std::string::npos);
        std::istringstream words(line.substr(at + marker.size(), list_end - at - marker.size()));
        std::vector<std::string> choices;
        for (std::string w; words >> w;)
            choices.push_back(w);
        std::istringstream patterns(line.substr(first, at - first));
        for (std::string p; patterns >> p;)
            if (p != "|" && p.find(':') != std::string::npos)
                arms.push_back({p.substr(0, p.find(':')), p.substr(p.find(':') + 1), choices});
    }
    std::set<std::string> seen;
    for (const auto& a : arms)
        seen.insert(a.verb + ":" + a.what);
    for (const std::string expected :
         {"*:--output", "*:--log-format", "up:--stage", "up:--skip", "up:--from",
          "harden:--profile", "verify:--only", "verify:--skip", "completion:0", "image:0"}) {
        INFO("no choices for " << expected);
        CHECK(seen.contains(expected));
    }

    ProcessOptions po;
    po.env["LABCTL_PARSE_ONLY"] = "1";
    auto argv_for = [](const Arm& a, const std::string& value) -> std::vector<std::string> {
        if (a.what.starts_with("-"))
            return a.verb == "*" ? std::vector<std::string>{a.what, value, "version"}
                                 : std::vector<std::string>{a.verb, a.what, value};
        return {a.verb, value}; // the first positional argument (the only one with choices)
    };
    for (const auto& a : arms) {
        INFO(a.verb << ":" << a.what);
        CHECK_FALSE(a.choices.empty());
        for (const auto& choice : a.choices) {
            const auto argv = argv_for(a, choice);
            const auto r = run_labctl(argv, po);
            INFO("labctl " << Catch::Detail::stringify(argv) << ": " << r.err);
            CHECK(r.exit_code == 0);
        }
        const auto argv = argv_for(a, "no-such-choice");
        const auto r = run_labctl(argv, po);
        INFO("labctl " << Catch::Detail::stringify(argv) << ": " << r.err);
        CHECK(r.exit_code == 2);
    }
}

TEST_CASE("the script bodies are templates that LABCTL_TEMPLATE_DIR overrides", "[completion]") {
    TempDir tmp;
    tmp.write("completions/labctl.bash.in", "# a site's own script\nverbs={{ verbs }}\n");
    ProcessOptions po;
    po.env["LABCTL_TEMPLATE_DIR"] = tmp.path().string();
    auto r = run_labctl({"completion", "bash"}, po);
    INFO(r.err);
    CHECK(r.exit_code == 0);
    std::string verbs;
    for (const auto& v : help_verbs())
        verbs += (verbs.empty() ? "" : " ") + v;
    CHECK(r.out == "# a site's own script\nverbs='" + verbs + "'\n");

    // The shells without an override still use the embedded templates.
    r = run_labctl({"completion", "zsh"}, po);
    CHECK(r.exit_code == 0);
    CHECK(r.out == read_file(source_dir() / "completions" / "_labctl"));

    // A placeholder the generator does not fill is an internal error naming it, not a script.
    tmp.write("completions/labctl.fish.in", "{{ verbs }}\n{{ no_such_part }}\n");
    r = run_labctl({"completion", "fish"}, po);
    CHECK(r.exit_code == 1);
    CHECK(r.out.empty());
    CHECK(r.err.find("no_such_part") != std::string::npos);
}

TEST_CASE("bash completes every visible verb and no hidden one", "[completion][bash]") {
    labctl::test::require_program("bash");
    TempDir tmp;
    const auto script = tmp.write("labctl.bash", completion_script("bash"));
    const auto offered = bash_complete(script, {"labctl", ""});
    CHECK(word_set(offered) == word_set(help_verbs()));
    CHECK_FALSE(word_set(offered).contains("__complete"));

    CHECK(word_set(bash_complete(script, {"labctl", "ver"})) == Words{"verify", "version"});
    // global options before the verb do not hide the verbs
    CHECK(word_set(bash_complete(script, {"labctl", "-f", "lab.yaml", "--output", "json", ""})) ==
          word_set(help_verbs()));
}

TEST_CASE("bash completes a verb's options and the global ones after the verb",
          "[completion][bash]") {
    labctl::test::require_program("bash");
    TempDir tmp;
    const auto script = tmp.write("labctl.bash", completion_script("bash"));
    const auto offered = bash_complete(script, {"labctl", "up", "--"});
    check_contains_all(offered, {"--stage", "--skip", "--from", "--keep-on-failure", "--junit",
                                 "--help", "--file", "--output", "--log-format", "--verbose",
                                 "--quiet", "--no-color"});
    CHECK_FALSE(word_set(offered).contains("--only")); // verify's, not up's

    const auto root = bash_complete(script, {"labctl", "-"});
    check_contains_all(
        root, {"-f", "--file", "-v", "-q", "--output", "--help", "--help-all", "--version"});
    CHECK_FALSE(word_set(root).contains("--stage"));
}

TEST_CASE("bash completes the choices of option values", "[completion][bash]") {
    labctl::test::require_program("bash");
    TempDir tmp;
    const auto script = tmp.write("labctl.bash", completion_script("bash"));
    CHECK(word_set(bash_complete(script, {"labctl", "--output", ""})) == Words{"table", "json"});
    // "--output=" reaches the function as three words: bash splits at "="
    CHECK(word_set(bash_complete(script, {"labctl", "--output", "=", ""})) ==
          Words{"table", "json"});
    CHECK(bash_complete(script, {"labctl", "--output", "=", "j"}) ==
          std::vector<std::string>{"json"});
    CHECK(word_set(bash_complete(script, {"labctl", "version", "--log-format", ""})) ==
          Words{"text", "json"});
    CHECK(word_set(bash_complete(script, {"labctl", "up", "--stage", ""})) == word_set(k_stages));
    CHECK(word_set(bash_complete(script, {"labctl", "-v", "up", "--skip", "de"})) ==
          Words{"deploy"});
    CHECK(word_set(bash_complete(script, {"labctl", "harden", "--profile", ""})) ==
          Words{"modern", "compat"});
    CHECK(word_set(bash_complete(script, {"labctl", "completion", ""})) ==
          Words{"bash", "zsh", "fish"});
}

TEST_CASE("bash completes check names for verify --only and --skip", "[completion][bash]") {
    labctl::test::require_program("bash");
    TempDir tmp;
    const auto script = tmp.write("labctl.bash", completion_script("bash"));
    const auto& checks = config::known_checks();
    CHECK(word_set(bash_complete(script, {"labctl", "verify", "--only", ""})) == word_set(checks));
    CHECK(word_set(bash_complete(script, {"labctl", "verify", "--skip", ""})) == word_set(checks));
    // `up --skip` takes stages, `verify --skip` checks: the verb decides
    CHECK(word_set(bash_complete(script, {"labctl", "up", "--skip", ""})) == word_set(k_stages));
}

TEST_CASE("bash completes file names for PATH and FILE options", "[completion][bash]") {
    labctl::test::require_program("bash");
    TempDir tmp;
    const auto script = tmp.write("labctl.bash", completion_script("bash"));
    const auto lab = tmp.write("lab.yaml", k_lab_yaml);
    const std::string prefix = (tmp.path() / "lab.").string();
    CHECK(bash_complete(script, {"labctl", "-f", prefix}) ==
          std::vector<std::string>{lab.string()});
    CHECK(bash_complete(script, {"labctl", "verify", "--junit", prefix}) ==
          std::vector<std::string>{lab.string()});
    CHECK(bash_complete(script, {"labctl", "init", "--key", prefix}) ==
          std::vector<std::string>{lab.string()});
}

TEST_CASE("bash completes ssh with the VM names of the lab file", "[completion][bash]") {
    labctl::test::require_program("bash");
    TempDir tmp;
    const auto script = tmp.write("labctl.bash", completion_script("bash"));
    const auto lab = tmp.write("lab/lab.yaml", k_lab_yaml).string();
    TempDir elsewhere;

    // -f before or after the verb, long or short; from a directory without a lab.yaml
    const BashOptions away{.cwd = elsewhere.path().string()};
    CHECK(word_set(bash_complete(script, {"labctl", "ssh", "-f", lab, ""}, away)) ==
          Words{"alpha", "beta"});
    CHECK(word_set(bash_complete(script, {"labctl", "-f", lab, "ssh", ""}, away)) ==
          Words{"alpha", "beta"});
    CHECK(word_set(bash_complete(script, {"labctl", "--file", lab, "ssh", "a"}, away)) ==
          Words{"alpha"});
    // without -f: ./lab.yaml of the current directory
    const BashOptions here{.cwd = (tmp.path() / "lab").string()};
    CHECK(word_set(bash_complete(script, {"labctl", "ssh", ""}, here)) == Words{"alpha", "beta"});
    // only the first argument is a VM; after "--" comes the remote command
    CHECK(bash_complete(script, {"labctl", "ssh", "alpha", ""}, here).empty());
    CHECK(bash_complete(script, {"labctl", "ssh", "alpha", "--", ""}, here).empty());
    // a broken or missing lab file completes nothing, quietly
    CHECK(bash_complete(script, {"labctl", "ssh", ""}, away).empty());
}

TEST_CASE("labctl __complete hosts prints the lab's SSH destinations and not its jump host",
          "[completion]") {
    TempDir tmp;
    const auto lab = tmp.write("lab.yaml", k_hosts_lab_yaml).string();
    auto r = run_labctl({"-f", lab, "__complete", "hosts"});
    CHECK(r.exit_code == 0);
    CHECK(r.err.empty());
    CHECK(lines(r.out) == std::vector<std::string>{"admin@10.66.77.10:22", "admin@10.66.77.11:22",
                                                   "deployer@192.0.2.7:22"});
    CHECK(r.out.find("jump.example.org") == std::string::npos);

    // mode user: 127.0.0.1 and each VM's own ssh forward
    const auto user_lab = tmp.write("user/lab.yaml", "version: 1\nproject: demo\n"
                                                     "network: {mode: user}\n"
                                                     "vms:\n  - name: one\n  - name: two\n");
    r = run_labctl({"-f", user_lab.string(), "__complete", "hosts"});
    CHECK(r.exit_code == 0);
    CHECK(lines(r.out) ==
          std::vector<std::string>{"labctl@127.0.0.1:2222", "labctl@127.0.0.1:2223"});

    // a broken or missing lab file: nothing at all, and no failure
    const auto broken = tmp.write("broken.yaml", "version: 1\nvms: [\n");
    for (const auto& file : {broken.string(), (tmp.path() / "missing.yaml").string()}) {
        INFO(file);
        r = run_labctl({"-f", file, "__complete", "hosts"});
        CHECK(r.exit_code == 0);
        CHECK(r.out.empty());
        CHECK(r.err.empty());
    }
}

TEST_CASE("bash completes --host with the lab's SSH destinations", "[completion][bash]") {
    labctl::test::require_program("bash");
    TempDir tmp;
    const auto script = tmp.write("labctl.bash", completion_script("bash"));
    const auto lab = tmp.write("lab/lab.yaml", k_hosts_lab_yaml).string();
    TempDir elsewhere;
    const BashOptions away{.cwd = elsewhere.path().string()};
    // every verb with --host; -f before or after the verb
    for (const std::string verb : {"harden", "deploy", "verify"}) {
        INFO(verb);
        CHECK(word_set(bash_complete(script, {"labctl", "-f", lab, verb, "--host", ""}, away)) ==
              k_destinations);
        CHECK(word_set(bash_complete(script, {"labctl", verb, "--file", lab, "--host", ""},
                                     away)) == k_destinations);
    }
    // "--host=" (bash splits the word at "="); a prefix narrows them
    CHECK(word_set(bash_complete(script, {"labctl", "-f", lab, "harden", "--host", "=", ""},
                                 away)) == k_destinations);
    CHECK(word_set(bash_complete(script, {"labctl", "-f", lab, "harden", "--host", "adm"}, away)) ==
          k_admin_destinations);
    CHECK(bash_complete(script, {"labctl", "-f", lab, "deploy", "--host", "=", "d"}, away) ==
          std::vector<std::string>{"deployer@192.0.2.7:22"});
    // without -f: ./lab.yaml of the current directory
    const BashOptions here{.cwd = (tmp.path() / "lab").string()};
    CHECK(word_set(bash_complete(script, {"labctl", "verify", "--host", ""}, here)) ==
          k_destinations);
    // a broken or missing lab file completes nothing, quietly
    const auto broken = tmp.write("broken.yaml", "version: 1\nvms: [\n").string();
    std::string err = "(not run)";
    const BashOptions quiet{.cwd = elsewhere.path().string(), .err = &err};
    CHECK(bash_complete(script, {"labctl", "-f", broken, "harden", "--host", ""}, quiet).empty());
    CHECK(err.empty());
    err = "(not run)";
    CHECK(bash_complete(script, {"labctl", "harden", "--host", ""}, quiet).empty());
    CHECK(err.empty());
}

namespace {

/// Types command lines with destinations cut at "@" and ":" into an interactive bash and checks
/// the line bash makes of one TAB: the words bash split at COMP_WORDBREAKS are read as one.
void check_bash_tabs_over_wordbreaks(bool with_bash_completion) {
    TempDir tmp;
    const auto script = tmp.write("labctl.bash", completion_script("bash"));
    tmp.write("lab/lab.yaml", k_hosts_lab_yaml);
    tmp.write("broken.yaml", "version: 1\nvms: [\n");
    const std::string f = "labctl -f lab/lab.yaml ";
    // typed -> the line after one TAB
    const std::vector<std::pair<std::string, std::string>> cases{
        {f + "harden --host ", f + "harden --host "},
        {f + "harden --host adm", f + "harden --host admin@10.66.77.1"},
        {f + "harden --host admin@", f + "harden --host admin@10.66.77.1"},
        {f + "harden --host admin@10.66.77.11", f + "harden --host admin@10.66.77.11:22 "},
        {f + "deploy --host admin@10.66.77.10:", f + "deploy --host admin@10.66.77.10:22 "},
        {"labctl deploy --file lab/lab.yaml --host=admin@10.66.77.10:2",
         "labctl deploy --file lab/lab.yaml --host=admin@10.66.77.10:22 "},
        {f + "verify --host de", f + "verify --host deployer@192.0.2.7:22 "},
        {"labctl -f broken.yaml verify --host adm", "labctl -f broken.yaml verify --host adm"},
        {f + "ssh a", f + "ssh alpha "},
    };
    std::vector<std::string> typed;
    for (const auto& c : cases)
        typed.push_back(c.first);
    const auto tabs = bash_interactive(tmp.path() / "driver", script, tmp.path().string(), typed,
                                       with_bash_completion);
    for (const auto& [line, expected] : cases) {
        INFO("typed: '" << line << "'");
        REQUIRE(tabs.contains(line));
        CHECK(tabs.at(line).line == expected);
    }
    // what _labctl offered: whole destinations for a whole word, else what follows the part
    // before bash's last word break
    CHECK(word_set(tabs.at(f + "harden --host ").replies) == k_destinations);
    CHECK(word_set(tabs.at(f + "harden --host adm").replies) == k_admin_destinations);
    CHECK(tabs.at(f + "deploy --host admin@10.66.77.10:").replies ==
          std::vector<std::string>{"22"});
    CHECK(tabs.at("labctl -f broken.yaml verify --host adm").replies.empty());
}

} // namespace

TEST_CASE("bash completes a destination typed up to its '@' or ':' (COMP_WORDBREAKS)",
          "[completion][bash]") {
    labctl::test::require_program("bash");
    require_zpty(); // the interactive bash runs on a pseudo-terminal zsh's zpty provides
    check_bash_tabs_over_wordbreaks(false);
}

TEST_CASE("bash completes a destination over '@' and ':' with the bash-completion package loaded",
          "[completion][bash]") {
    labctl::test::require_program("bash");
    if (!std::filesystem::exists("/usr/share/bash-completion/bash_completion"))
        labctl::test::skip("the bash-completion package is not installed");
    require_zpty();
    check_bash_tabs_over_wordbreaks(true);
}

TEST_CASE("bash completion also works with the bash-completion package loaded",
          "[completion][bash]") {
    labctl::test::require_program("bash");
    if (!std::filesystem::exists("/usr/share/bash-completion/bash_completion"))
        labctl::test::skip("the bash-completion package is not installed");
    TempDir tmp;
    const auto script = tmp.write("labctl.bash", completion_script("bash"));
    const auto lab = tmp.write("lab.yaml", k_lab_yaml);
    const BashOptions with{.cwd = tmp.path().string(), .with_bash_completion = true};
    CHECK(word_set(bash_complete(script, {"labctl", ""}, with)) == word_set(help_verbs()));
    CHECK(word_set(bash_complete(script, {"labctl", "--output", ""}, with)) ==
          Words{"table", "json"});
    CHECK(bash_complete(script, {"labctl", "-f", "lab."}, with) ==
          std::vector<std::string>{"lab.yaml"});
    CHECK(word_set(bash_complete(script, {"labctl", "ssh", ""}, with)) == Words{"alpha", "beta"});
}

TEST_CASE("the bash script is valid bash", "[completion][bash]") {
    require_tool("bash");
    TempDir tmp;
    const auto script = tmp.write("labctl.bash", completion_script("bash"));
    const auto r = check_script({"bash", "-n", script.string()});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.err.empty());
}

TEST_CASE("shellcheck finds nothing to report in the bash script", "[completion][bash]") {
    require_tool("shellcheck");
    TempDir tmp;
    const auto script = tmp.write("labctl.bash", completion_script("bash"));
    // Every severity down to style; a finding names its line, code and the reason.
    const auto r = check_script({"shellcheck", "-s", "bash", "-S", "style", script.string()});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.empty());
    CHECK(r.err.empty());
    // shellcheck can fail: the same checker reports a script with a known finding (SC2086).
    const auto bad = tmp.write("bad.bash", "f() { echo $1; }\n");
    const auto b = check_script({"shellcheck", "-s", "bash", "-S", "style", bad.string()});
    CHECK(b.exit_code != 0);
    CHECK(b.out.find("SC2086") != std::string::npos);
}

TEST_CASE("the zsh script is valid zsh", "[completion][zsh]") {
    require_tool("zsh");
    TempDir tmp;
    const auto script = tmp.write("_labctl", completion_script("zsh"));
    CHECK(completion_script("zsh").starts_with("#compdef labctl\n"));
    const auto r = check_script({"zsh", "-n", script.string()});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.err.empty());
}

TEST_CASE("zsh completes verbs, option values and VM names", "[completion][zsh]") {
    require_zpty();
    TempDir tmp;
    tmp.write("lab.yaml", k_lab_yaml);
    auto offered = zsh_complete(tmp.path(), completion_script("zsh"), tmp.path().string(),
                                {"labctl ", "labctl --output ", "labctl verify --only ",
                                 "labctl ssh ", "labctl ssh -f lab.yaml "});
    CHECK(offered["labctl "] == word_set(help_verbs()));
    CHECK(offered["labctl --output "] == Words{"table", "json"});
    CHECK(offered["labctl verify --only "] == word_set(config::known_checks()));
    CHECK(offered["labctl ssh "] == Words{"alpha", "beta"});
    CHECK(offered["labctl ssh -f lab.yaml "] == Words{"alpha", "beta"});
}

TEST_CASE("zsh completes --host with the lab's SSH destinations", "[completion][zsh]") {
    require_zpty();
    TempDir tmp;
    tmp.write("lab/lab.yaml", k_hosts_lab_yaml);
    tmp.write("broken.yaml", "version: 1\nvms: [\n");
    auto offered = zsh_complete(
        tmp.path() / "driver", completion_script("zsh"), tmp.path().string(),
        {"labctl -f lab/lab.yaml harden --host ", "labctl deploy --file lab/lab.yaml --host adm",
         "labctl -f lab/lab.yaml verify --host=admin@10.66.77.11",
         "labctl -f lab/lab.yaml harden --host admin@10.66.77.10:",
         "labctl -f broken.yaml harden --host "});
    CHECK(offered["labctl -f lab/lab.yaml harden --host "] == k_destinations);
    CHECK(offered["labctl deploy --file lab/lab.yaml --host adm"] == k_admin_destinations);
    CHECK(offered["labctl -f lab/lab.yaml verify --host=admin@10.66.77.11"] ==
          Words{"admin@10.66.77.11:22"});
    CHECK(offered["labctl -f lab/lab.yaml harden --host admin@10.66.77.10:"] ==
          Words{"admin@10.66.77.10:22"});
    CHECK(offered["labctl -f broken.yaml harden --host "].empty());
}

TEST_CASE("the fish script is valid fish", "[completion][fish]") {
    require_tool("fish");
    TempDir tmp;
    const auto script = tmp.write("labctl.fish", completion_script("fish"));
    const auto r = check_script({"fish", "--no-execute", script.string()});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.err.empty());
}

TEST_CASE("fish completes verbs, options, option values and VM names", "[completion][fish]") {
    labctl::test::require_program("fish");
    TempDir tmp;
    const auto script = tmp.write("labctl.fish", completion_script("fish"));
    tmp.write("lab.yaml", k_lab_yaml);
    const auto dir = tmp.path().string();
    const auto verbs = fish_complete(script, "labctl ", dir);
    CHECK(word_set(verbs) == word_set(help_verbs()));
    // options taking a value before the verb do not hide the verbs
    CHECK(word_set(fish_complete(script, "labctl -f lab.yaml ", dir)) == word_set(help_verbs()));
    check_contains_all(fish_complete(script, "labctl up --", dir),
                       {"--stage", "--skip", "--from", "--junit", "--file", "--output"});
    CHECK(word_set(fish_complete(script, "labctl --output ", dir)) == Words{"table", "json"});
    CHECK(word_set(fish_complete(script, "labctl up --stage ", dir)) == word_set(k_stages));
    CHECK(word_set(fish_complete(script, "labctl verify --only ", dir)) ==
          word_set(config::known_checks()));
    CHECK(word_set(fish_complete(script, "labctl ssh ", dir)) == Words{"alpha", "beta"});
    CHECK(word_set(fish_complete(script, "labctl -f lab.yaml ssh ", dir)) ==
          Words{"alpha", "beta"});
    CHECK(fish_complete(script, "labctl ssh alpha ", dir).empty());
    CHECK(fish_complete(script, "labctl -f lab.", dir) == std::vector<std::string>{"lab.yaml"});
}

TEST_CASE("fish completes --host with the lab's SSH destinations", "[completion][fish]") {
    labctl::test::require_program("fish");
    TempDir tmp;
    const auto script = tmp.write("labctl.fish", completion_script("fish"));
    tmp.write("lab/lab.yaml", k_hosts_lab_yaml);
    tmp.write("broken.yaml", "version: 1\nvms: [\n");
    const auto dir = tmp.path().string();
    CHECK(word_set(fish_complete(script, "labctl -f lab/lab.yaml harden --host ", dir)) ==
          k_destinations);
    CHECK(word_set(fish_complete(script, "labctl deploy --file lab/lab.yaml --host adm", dir)) ==
          k_admin_destinations);
    CHECK(fish_complete(script, "labctl -f lab/lab.yaml verify --host=admin@10.66.77.11", dir) ==
          std::vector<std::string>{"--host=admin@10.66.77.11:22"});
    CHECK(fish_complete(script, "labctl -f lab/lab.yaml harden --host admin@10.66.77.10:", dir) ==
          std::vector<std::string>{"admin@10.66.77.10:22"});
    std::string err = "(not run)";
    CHECK(fish_complete(script, "labctl -f broken.yaml harden --host ", dir, &err).empty());
    CHECK(err.empty());
}
