#pragma once
// Drivers for the completion tests (header-only): the generated scripts loaded into real bash,
// zsh and fish, asked to complete a command line, and what they offered read back.
//
// - bash_complete: calls _labctl the way bash does, with COMP_WORDS as given (non-interactive).
// - bash_interactive: an interactive bash on a pseudo-terminal (driven by zsh's zpty module): the
//   line is typed and TAB pressed, so bash itself splits the words at COMP_WORDBREAKS and inserts
//   what it completes; the line after the TAB is read back through a bind -x key.
// - zsh_complete: an interactive zsh on a pseudo-terminal with compadd wrapped to record every
//   candidate.
// - fish_complete: fish's own `complete -C`.

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <labctl/core/process.hpp>

#include "skip.hpp"
#include "support.hpp"

namespace labctl::test::completion {

using Words = std::set<std::string>;

inline std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        if (!line.empty())
            out.push_back(line);
    return out;
}

inline Words word_set(const std::vector<std::string>& words) {
    return Words(words.begin(), words.end());
}

inline std::string completion_script(const std::string& shell) {
    const auto r = run_labctl({"completion", shell});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    REQUIRE(r.err.empty());
    return r.out;
}

/// Environment for the shells: the built labctl first on PATH (the scripts call `labctl`), no
/// inputrc of the machine's (bash's readline settings are its defaults).
inline std::map<std::string, std::string> shell_env() {
    const char* path = std::getenv("PATH");
    return {{"PATH", labctl_binary().parent_path().string() + ":" +
                         (path ? path : "/usr/local/bin:/usr/bin:/bin")},
            {"NO_COLOR", "1"},
            {"INPUTRC", "/dev/null"},
            {"HOME", std::filesystem::temp_directory_path().string()}};
}

inline std::string sh_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'')
            out += "'\\''";
        else
            out += c;
    }
    return out + "'";
}

/// Writes `text` to `path` (creating its directory) and returns the path.
inline std::filesystem::path write_text(const std::filesystem::path& path,
                                        const std::string& text) {
    std::filesystem::create_directories(path.parent_path());
    std::ofstream f(path, std::ios::binary);
    f << text;
    f.close();
    REQUIRE(f.good());
    return path;
}

/// Skips unless zsh with its zpty module is there (the pseudo-terminal drivers need it).
inline void require_zpty() {
    require_program("zsh");
    if (!run_process({"zsh", "-fc", "zmodload zsh/zpty"}).ok())
        skip("zsh's zpty module is not available");
}

struct BashOptions {
    std::string cwd;
    bool with_bash_completion = false; ///< source the bash-completion package first
    std::string* err = nullptr;        ///< set: receives bash's stderr
};

/// Runs the generated bash completion for the command line `words` (the last word is the one
/// being completed) and returns COMPREPLY.
inline std::vector<std::string> bash_complete(const std::filesystem::path& script,
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
    if (options.err != nullptr)
        *options.err = r.err;
    return lines(r.out);
}

/// What one TAB did in an interactive bash.
struct BashTab {
    std::vector<std::string> replies; ///< COMPREPLY as _labctl left it
    std::string line;                 ///< the command line after the TAB
};

/// Types each of `commandlines` into an interactive bash (with the script at `script` loaded,
/// and the bash-completion package before it when asked), presses TAB once, and records what
/// _labctl offered and the line bash made of it. `scratch` holds the driver's files.
inline std::map<std::string, BashTab> bash_interactive(const std::filesystem::path& scratch,
                                                       const std::filesystem::path& script,
                                                       const std::string& cwd,
                                                       const std::vector<std::string>& commandlines,
                                                       bool with_bash_completion = false) {
    const auto out = scratch / "bash-tabs.txt";
    std::string rc = "PS1=''\nbind 'set bell-style none'\n";
    if (with_bash_completion)
        rc += "source /usr/share/bash-completion/bash_completion || exit 3\n";
    rc += "source " + sh_quote(script.string()) + " || exit 3\n" +
          // _labctl's replies, then DONE; the line (Ctrl-T) as LINE:<line>
          "__labctl_record() {\n  _labctl \"$@\"\n  {\n"
          "    (( ${#COMPREPLY[@]} )) && printf 'C:%s\\n' \"${COMPREPLY[@]}\"\n"
          "    echo DONE\n  } >> " +
          sh_quote(out.string()) +
          "\n}\n"
          "complete -F __labctl_record labctl\n"
          "bind -x '\"\\C-t\": printf \"LINE:%s\\n\" \"$READLINE_LINE\" >> " +
          out.string() + "'\necho READY >> " + sh_quote(out.string()) + "\n";
    const auto rc_path = write_text(scratch / "bash-tabs.rc", rc);
    const std::string driver = R"ZSH(
zmodload zsh/zpty
out=$1; rc=$2; shift 2
count() { [[ -f $out ]] && grep -cx -- "$1" $out || print 0 }
wait_for() {
  local i
  for i in {1..400}; do
    (( $(count "$1") >= $2 )) && return 0
    sleep 0.05
  done
  print -u2 "timed out waiting for $1"; return 1
}
zpty b bash --norc --noprofile -i
zpty -w b "source $rc"
wait_for READY 1 || exit 1
n=0
for l in "$@"; do
  print -r -- "[$l]" >> $out
  n=$(( n + 1 ))
  zpty -w -n b "$l"$'\t'
  wait_for DONE $n || exit 1
  zpty -w -n b $'\C-t'
  wait_for 'LINE:.*' $n || exit 1
  zpty -w -n b $'\C-e\C-u'
done
zpty -d b
)ZSH";
    const auto driver_path = write_text(scratch / "bash-tabs.zsh", driver);
    std::vector<std::string> argv{"zsh", "-f", driver_path.string(), out.string(),
                                  rc_path.string()};
    argv.insert(argv.end(), commandlines.begin(), commandlines.end());
    ProcessOptions po;
    po.env = shell_env();
    po.cwd = cwd;
    po.timeout = std::chrono::seconds(120);
    const auto r = run_process(argv, po);
    INFO("bash driver stderr: " << r.err);
    REQUIRE(r.exit_code == 0);

    std::map<std::string, BashTab> tabs;
    std::string current;
    for (const auto& line : lines(read_file(out))) {
        if (line.starts_with("[") && line.ends_with("]"))
            current = line.substr(1, line.size() - 2);
        else if (line.starts_with("C:"))
            tabs[current].replies.push_back(line.substr(2));
        else if (line.starts_with("LINE:"))
            tabs[current].line = line.substr(5);
    }
    return tabs;
}

/// Asks an interactive zsh (the script installed as _labctl in an fpath directory under
/// `scratch`, run in `cwd`) to complete each of `commandlines`; returns every candidate offered
/// for each.
inline std::map<std::string, Words> zsh_complete(const std::filesystem::path& scratch,
                                                 const std::string& script, const std::string& cwd,
                                                 const std::vector<std::string>& commandlines) {
    write_text(scratch / "fpath" / "_labctl", script);
    const auto out = scratch / "completions.txt";
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
    const auto driver_path = write_text(scratch / "driver.zsh", driver);
    std::vector<std::string> argv{"zsh", "-f", driver_path.string(), out.string(),
                                  (scratch / "fpath").string()};
    argv.insert(argv.end(), commandlines.begin(), commandlines.end());
    ProcessOptions po;
    po.env = shell_env();
    po.cwd = cwd;
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
    return offered;
}

/// Runs fish's own completion for `commandline` with the generated script loaded.
inline std::vector<std::string> fish_complete(const std::filesystem::path& script,
                                              const std::string& commandline,
                                              const std::string& cwd, std::string* err = nullptr) {
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
    if (err != nullptr)
        *err = r.err;
    std::vector<std::string> out;
    for (const auto& l : lines(r.out))
        out.push_back(l.substr(0, l.find('\t'))); // drop the description
    return out;
}

} // namespace labctl::test::completion
