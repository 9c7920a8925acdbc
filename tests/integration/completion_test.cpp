// Shell completion: the committed scripts are exactly what `labctl completion <shell>` prints, the
// scripts pass `bash -n`, shellcheck, `zsh -n` and `fish -n`, their bodies are templates a site can
// override, every choice they offer is a value labctl accepts, and they really complete in bash,
// zsh and fish (verbs, options, option values, file names and the lab's VM names through the
// hidden `labctl __complete vms`).

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

#include "skip.hpp"
#include "support.hpp"

using namespace labctl;
using labctl::test::labctl_binary;
using labctl::test::read_file;
using labctl::test::run_labctl;
using labctl::test::source_dir;
using labctl::test::TempDir;
using Words = std::set<std::string>;

namespace {

const std::string k_lab_yaml = "version: 1\n"
                               "project: demo\n"
                               "vms:\n"
                               "  - name: alpha\n"
                               "  - name: beta\n";

const std::vector<std::string> k_stages{"provision", "harden", "deploy", "verify"};

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (!line.empty())
            out.push_back(line);
    return out;
}

Words word_set(const std::vector<std::string>& words) {
    return Words(words.begin(), words.end());
}

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

std::string completion_script(const std::string& shell) {
    const auto r = run_labctl({"completion", shell});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    REQUIRE(r.err.empty());
    return r.out;
}

/// Environment for the shells: the built labctl first on PATH (the scripts call `labctl`).
std::map<std::string, std::string> shell_env() {
    const char* path = std::getenv("PATH");
    return {{"PATH", labctl_binary().parent_path().string() + ":" +
                         (path ? path : "/usr/local/bin:/usr/bin:/bin")},
            {"NO_COLOR", "1"},
            {"HOME", std::filesystem::temp_directory_path().string()}};
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

std::string sh_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'')
            out += "'\\''";
        else
            out += c;
    }
    return out + "'";
}

struct BashOptions {
    std::string cwd;
    bool with_bash_completion = false; ///< source the bash-completion package first
};

/// Runs the generated bash completion for the command line `words` (the last word is the one
/// being completed) and returns COMPREPLY.
std::vector<std::string> bash_complete(const std::filesystem::path& script,
                                       const std::vector<std::string>& words,
                                       const BashOptions& options = {}) {
    std::string line, array;
    for (const auto& w : words) {
        line += (line.empty() ? "" : " ") + w;
        array += sh_quote(w) + " ";
    }
    std::string program;
    if (options.with_bash_completion)
        program += "source /usr/share/bash-completion/bash_completion || exit 3\n";
    program += "source " + sh_quote(script.string()) + " || exit 3\n" + "COMP_WORDS=(" + array +
               ")\n" + "COMP_CWORD=" + std::to_string(words.size() - 1) + "\n" +
               "COMP_LINE=" + sh_quote(line) + "\n" + "COMP_POINT=${#COMP_LINE}\n" +
               "COMPREPLY=()\n"
               "_labctl labctl \"${COMP_WORDS[COMP_CWORD]}\" \"${COMP_WORDS[COMP_CWORD-1]}\"\n"
               "printf '%s\\n' \"${COMPREPLY[@]}\"\n";
    ProcessOptions po;
    po.env = shell_env();
    po.timeout = std::chrono::seconds(60);
    if (!options.cwd.empty())
        po.cwd = options.cwd;
    const auto r = run_process({"bash", "--norc", "--noprofile", "-c", program}, po);
    INFO("bash stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    return lines(r.out);
}

/// Runs fish's own completion for `commandline` with the generated script loaded.
std::vector<std::string> fish_complete(const std::filesystem::path& script,
                                       const std::string& commandline, const std::string& cwd) {
    const std::string program = "source " + sh_quote(script.string()) +
                                "; or exit 3\n"
                                "complete -C " +
                                sh_quote(commandline) + "\n";
    ProcessOptions po;
    po.env = shell_env();
    po.timeout = std::chrono::seconds(60);
    po.cwd = cwd;
    const auto r = run_process({"fish", "--no-config", "-c", program}, po);
    INFO("fish stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    std::vector<std::string> out;
    for (const auto& l : lines(r.out))
        out.push_back(l.substr(0, l.find('\t'))); // drop the description
    return out;
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
    labctl::test::require_program("zsh");
    if (!run_process({"zsh", "-fc", "zmodload zsh/zpty"}).ok())
        labctl::test::skip("zsh's zpty module is not available");
    TempDir tmp;
    tmp.write("fpath/_labctl", completion_script("zsh"));
    tmp.write("lab.yaml", k_lab_yaml);
    const auto out = tmp.path() / "completions.txt";
    // An interactive zsh on a pseudo-terminal, with compadd wrapped to record every candidate:
    // one "[line]" marker, then the candidates, then DONE after each compadd.
    const std::string driver = R"ZSH(
zmodload zsh/zpty
out=$1; fpath_dir=$2; shift 2
count() { [[ -f $out ]] && grep -cxF -- "$1" $out || print 0 }
wait_for() {
  local i
  for i in {1..400}; do
    (( $(count "$1") >= $2 )) && return 0
    sleep 0.05
  done
  print -u2 "timed out waiting for $1"; return 1
}
zpty z zsh -f -i
zpty -w z "PS1='' PROMPT='' RPROMPT=''; fpath=($fpath_dir \$fpath); autoload -Uz compinit; compinit -u -D"
zpty -w z "compadd() { local -a h; builtin compadd -A h \"\$@\"; print -l -- \$h >> $out; builtin compadd \"\$@\"; print -- DONE >> $out }"
n=0
for l in "$@"; do
  zpty -w z "print -r -- '[$l]' >> $out"
  wait_for "[$l]" 1 || exit 1
  zpty -w -n z "$l"$'\t'
  n=$(( n + 1 ))
  wait_for DONE $n || exit 1
  sleep 0.3
  n=$(count DONE)
  zpty -w -n z $'\C-e\C-u'
done
zpty -w z "print -- END >> $out"
wait_for END 1 || exit 1
zpty -d z
)ZSH";
    const auto driver_path = tmp.write("driver.zsh", driver);
    const std::vector<std::string> commandlines{"labctl ", "labctl --output ",
                                                "labctl verify --only ", "labctl ssh ",
                                                "labctl ssh -f lab.yaml "};
    std::vector<std::string> argv{"zsh", "-f", driver_path.string(), out.string(),
                                  (tmp.path() / "fpath").string()};
    argv.insert(argv.end(), commandlines.begin(), commandlines.end());
    ProcessOptions po;
    po.env = shell_env();
    po.cwd = tmp.path().string();
    po.timeout = std::chrono::seconds(120);
    const auto r = run_process(argv, po);
    INFO("zsh driver stderr: " << r.err);
    REQUIRE(r.exit_code == 0);

    // Candidates per command line.
    std::map<std::string, Words> offered;
    std::string current;
    for (const auto& line : lines(read_file(out))) {
        if (line.starts_with("[") && line.ends_with("]"))
            current = line.substr(1, line.size() - 2);
        else if (line != "DONE" && line != "END" && !current.empty())
            offered[current].insert(line);
    }
    CHECK(offered["labctl "] == word_set(help_verbs()));
    CHECK(offered["labctl --output "] == Words{"table", "json"});
    CHECK(offered["labctl verify --only "] == word_set(config::known_checks()));
    CHECK(offered["labctl ssh "] == Words{"alpha", "beta"});
    CHECK(offered["labctl ssh -f lab.yaml "] == Words{"alpha", "beta"});
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
