// The command surface of the labctl binary: verbs, global flags, exit codes, error format.

#include <fmt/format.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <labctl/core/exit_code.hpp>

#include "support.hpp"

using namespace labctl;
using labctl::test::run_labctl;

namespace {

const std::vector<std::string> k_verbs{"up",     "provision", "harden",     "deploy", "verify",
                                       "down",   "plan",      "validate",   "status", "ssh",
                                       "doctor", "init",      "completion", "version"};

using labctl::test::contains;

} // namespace

TEST_CASE("help lists every verb and the exit code table", "[cli]") {
    const auto r = run_labctl({"--help"});
    REQUIRE(r.exit_code == 0);
    for (const auto& verb : k_verbs)
        CHECK(contains(r.out, "  " + verb));
    CHECK_FALSE(contains(r.out, "__complete"));
    CHECK(contains(r.out, "Exit codes:"));
    for (const auto& e : k_exit_codes) {
        INFO(e.meaning);
        CHECK(contains(r.out, fmt::format("{:>3}  {}", to_int(e.code), e.meaning)));
    }
}

TEST_CASE("every verb has its own help text", "[cli]") {
    for (const auto& verb : k_verbs) {
        INFO(verb);
        const auto r = run_labctl({verb, "--help"});
        CHECK(r.exit_code == 0);
        CHECK(contains(r.out, "Usage:"));
        CHECK(r.err.empty());
    }
}

TEST_CASE("parse errors are usage errors with a hint, never CLI11 exit codes", "[cli]") {
    const auto unknown = run_labctl({"--frobnicate"});
    CHECK(unknown.exit_code == 2);
    CHECK(contains(unknown.err, "labctl: error: "));
    CHECK(contains(unknown.err, "hint: run 'labctl --help' for usage"));

    const auto bad_value = run_labctl({"--output", "xml", "version"});
    CHECK(bad_value.exit_code == 2);
    CHECK(contains(bad_value.err, "xml"));

    const auto in_verb = run_labctl({"up", "--stage", "nonsense"});
    CHECK(in_verb.exit_code == 2);
    CHECK(contains(in_verb.err, "hint: run 'labctl up --help' for usage"));

    const auto missing = run_labctl({"ssh"});
    CHECK(missing.exit_code == 2);
}

TEST_CASE("no command is a usage error", "[cli]") {
    const auto r = run_labctl({});
    CHECK(r.exit_code == 2);
    CHECK(contains(r.err, "labctl: error: no command given\nhint: "));
}

TEST_CASE("global flags are accepted before and after the verb", "[cli]") {
    const auto before = run_labctl({"--output", "json", "version"});
    const auto after = run_labctl({"version", "--output", "json"});
    REQUIRE(before.exit_code == 0);
    REQUIRE(after.exit_code == 0);
    CHECK(before.out == after.out);
    const auto j = nlohmann::json::parse(before.out);
    CHECK(j["version"].get<std::string>().find('.') != std::string::npos);
    CHECK(run_labctl({"version", "-q", "--no-color", "-vv", "--log-format", "json"}).exit_code ==
          0);
}

TEST_CASE("version prints on stdout, nothing on stderr", "[cli]") {
    const auto r = run_labctl({"version"});
    CHECK(r.exit_code == 0);
    CHECK(r.out.rfind("labctl ", 0) == 0);
    CHECK(r.err.empty());
    CHECK(run_labctl({"--version"}).out == r.out.substr(0, r.out.find(' ', 7)) + "\n");
}

TEST_CASE("init writes a lab file and a 0600 ed25519 key, and never overwrites", "[cli][init]") {
    test::TempDir dir;
    const auto lab = (dir.path() / "lab.yaml").string();
    const auto r = run_labctl({"init", "-f", lab, "--project", "demo"});
    REQUIRE(r.exit_code == 0);
    const auto key = dir.path() / ".labctl" / "id_ed25519";
    struct stat st {};
    REQUIRE(::stat(key.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(std::filesystem::exists(key.string() + ".pub"));
    CHECK(contains(test::read_file(key.string() + ".pub"), "ssh-ed25519 "));
    const auto text = test::read_file(lab);
    CHECK(contains(text, "project: demo"));
    CHECK(contains(text, "#")); // commented

    // The written file validates cleanly, key included.
    const auto v = run_labctl({"validate", "--strict", "-f", lab});
    INFO(v.err);
    CHECK(v.exit_code == 0);

    // A second init changes nothing.
    const auto key_before = test::read_file(key);
    test::TempDir other;
    std::filesystem::copy_file(lab, other.path() / "copy");
    const auto again = run_labctl({"init", "-f", lab, "--project", "other"});
    CHECK(again.exit_code == 0);
    CHECK(test::read_file(key) == key_before);
    CHECK(test::read_file(lab) == text);
    CHECK(contains(again.err, "exists: left unchanged"));
}

TEST_CASE("init rejects an invalid project name before writing anything", "[cli][init]") {
    test::TempDir dir;
    const auto lab = (dir.path() / "lab.yaml").string();
    const auto r = run_labctl({"init", "-f", lab, "--project", "Bad_Name"});
    CHECK(r.exit_code == 2);
    CHECK_FALSE(std::filesystem::exists(lab));
}

TEST_CASE("the bundled example validates on a fresh clone, the missing key only a warning",
          "[cli][validate]") {
    const auto example = (test::source_dir() / "examples" / "lab.yaml").string();
    const auto r = run_labctl({"validate", "-f", example});
    INFO(r.err);
    CHECK(r.exit_code == 0);
    CHECK(contains(r.out, ": valid: project 'lab'"));
}

TEST_CASE("validate reports json with every diagnostic", "[cli][validate]") {
    test::TempDir dir;
    const auto lab = dir.write("lab.yaml", "version: 1\nproject: demo\nvms:\n  - name: a\n"
                                           "    cpus: two\n    memry: 4GiB\n");
    const auto r = run_labctl({"validate", "--output", "json", "-f", lab.string()});
    CHECK(r.exit_code == 2);
    const auto j = nlohmann::json::parse(r.out);
    CHECK(j["valid"] == false);
    CHECK(j["errors"].get<int>() >= 2);
    for (const auto& d : j["diagnostics"]) {
        CHECK(d.contains("line"));
        CHECK(d.contains("hint"));
    }
}

TEST_CASE("a missing lab file is a usage error naming the file", "[cli][validate]") {
    const auto r = run_labctl({"validate", "-f", "/nonexistent/lab.yaml"});
    CHECK(r.exit_code == 2);
    CHECK(contains(r.err, "/nonexistent/lab.yaml"));
}

TEST_CASE("json log format writes NDJSON events on stderr", "[cli][log]") {
    test::TempDir dir;
    const auto lab = (dir.path() / "lab.yaml").string();
    const auto r = run_labctl({"init", "-f", lab, "--log-format", "json"});
    REQUIRE(r.exit_code == 0);
    std::size_t lines = 0;
    std::istringstream in(r.err);
    for (std::string line; std::getline(in, line); ++lines) {
        const auto j = nlohmann::json::parse(line);
        CHECK(j.contains("ts"));
        CHECK(j.contains("level"));
        CHECK(j.contains("msg"));
    }
    CHECK(lines >= 2);
}

TEST_CASE("quiet mode hides informational logs", "[cli][log]") {
    test::TempDir dir;
    const auto lab = (dir.path() / "lab.yaml").string();
    const auto r = run_labctl({"init", "-q", "-f", lab});
    REQUIRE(r.exit_code == 0);
    CHECK(r.err.empty());
}
