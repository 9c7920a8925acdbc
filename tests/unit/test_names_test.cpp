// ctest registers each Catch2 test case by name (catch_discover_tests); a ';' in a name splits
// it into list elements that match no test, which then "pass" without running anything. This
// reads every test source and refuses such names, so a test cannot silently stop running.

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "support.hpp"

namespace fs = std::filesystem;

namespace {

/// The names of the TEST_CASEs in `text`: their adjacent string literals joined.
std::vector<std::string> test_case_names(const std::string& text) {
    static const std::regex k_case(R"re(TEST_CASE\(\s*((?:"(?:[^"\\]|\\.)*"\s*)+))re");
    static const std::regex k_literal(R"re("((?:[^"\\]|\\.)*)")re");
    std::vector<std::string> out;
    for (std::sregex_iterator it(text.begin(), text.end(), k_case), end; it != end; ++it) {
        const std::string literals = (*it)[1];
        std::string name;
        for (std::sregex_iterator l(literals.begin(), literals.end(), k_literal); l != end; ++l)
            name += (*l)[1];
        out.push_back(name);
    }
    return out;
}

} // namespace

TEST_CASE("test case names are read from adjacent string literals", "[tests]") {
    const auto names = test_case_names("TEST_CASE(\"a; \"\n \"b\", \"[x]\") {}\n"
                                       "TEST_CASE(\"plain\") {}");
    REQUIRE(names.size() == 2);
    CHECK(names[0] == "a; b");
    CHECK(names[1] == "plain");
}

TEST_CASE("no test case name has a semicolon, which would keep ctest from ever running it",
          "[tests]") {
    std::size_t files = 0;
    std::vector<std::string> bad;
    for (const auto& entry :
         fs::recursive_directory_iterator(labctl::test::source_dir() / "tests")) {
        if (entry.path().extension() != ".cpp" ||
            entry.path().string().find("node_modules") != std::string::npos)
            continue;
        ++files;
        std::ifstream in(entry.path());
        std::stringstream text;
        text << in.rdbuf();
        for (const auto& name : test_case_names(text.str()))
            if (name.find(';') != std::string::npos)
                bad.push_back(entry.path().string() + ": " + name);
    }
    CHECK(files > 50);
    INFO("write ',' instead of ';' in:\n"
         << [&] {
                std::string s;
                for (const auto& b : bad)
                    s += b + "\n";
                return s;
            }());
    CHECK(bad.empty());
}
