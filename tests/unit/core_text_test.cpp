#include <catch2/catch.hpp>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <labctl/core/text.hpp>

using labctl::lower;
using labctl::tail_lines;
using labctl::trim;

TEST_CASE("trim strips ASCII whitespace at both ends only", "[core][text]") {
    CHECK(trim("  a b \t") == "a b");
    CHECK(trim("\r\n\v\fx\r\n") == "x");
    CHECK(trim("x") == "x");
    CHECK(trim("") == "");
    CHECK(trim(" \t\r\n ") == "");
    CHECK(trim("a  b") == "a  b");
    // Non-ASCII bytes (UTF-8 no-break space) are not whitespace here.
    CHECK(trim("\xc2\xa0x\xc2\xa0") == "\xc2\xa0x\xc2\xa0");
}

TEST_CASE("trim returns a view into its argument", "[core][text]") {
    const std::string s = "  value  ";
    const auto t = trim(s);
    CHECK(t.data() == s.data() + 2);
    CHECK(t.size() == 5);
}

TEST_CASE("lower lowers ASCII letters only", "[core][text]") {
    CHECK(lower("AbC-09_Z") == "abc-09_z");
    CHECK(lower("52:54:00:AB:CD:EF") == "52:54:00:ab:cd:ef");
    CHECK(lower("") == "");
    CHECK(lower("\xc3\x84") == "\xc3\x84"); // UTF-8 A-umlaut unchanged
    const std::string_view embedded("A\0B", 3);
    CHECK(lower(embedded) == std::string("a\0b", 3));
}

TEST_CASE("tail_lines keeps the last non-empty lines", "[core][text]") {
    CHECK(tail_lines("a\n\nb\nc\n", 2) == "\n  b\n  c");
    CHECK(tail_lines("", 3).empty());
}

TEST_CASE("shell quoting survives single quotes", "[core][text]") {
    CHECK(labctl::shell_quote("a b") == "'a b'");
    CHECK(labctl::shell_quote("it's") == "'it'\\''s'");
}

TEST_CASE("xml_escape makes text safe in content and in either quoted attribute", "[core][text]") {
    CHECK(labctl::xml_escape("a<b>&\"c\"'d'") == "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;");
    CHECK(labctl::xml_escape("tab\tnl\ncr\r") == "tab\tnl\ncr\r");
    CHECK(labctl::xml_escape(std::string("x\x01y\x1f") + '\0') == "x y  ");
    CHECK(labctl::xml_escape("\xc3\xa4 plain") == "\xc3\xa4 plain");
    CHECK(labctl::xml_escape("").empty());
}

TEST_CASE("take_lines hands over complete lines and keeps the unfinished rest", "[core][text]") {
    std::vector<std::string> got;
    const std::function<void(const std::string&)> collect = [&](const std::string& l) {
        got.push_back(l);
    };
    std::string buf = "one\ntw";
    labctl::take_lines(buf, collect);
    CHECK(got == std::vector<std::string>{"one"});
    CHECK(buf == "tw");
    buf += "o\n\nthree"; // the next chunk completes "two"; an empty line is a line
    labctl::take_lines(buf, collect);
    CHECK(got == std::vector<std::string>{"one", "two", ""});
    CHECK(buf == "three");
    labctl::take_lines(buf, collect, true);
    CHECK(got == std::vector<std::string>{"one", "two", "", "three"});
    CHECK(buf.empty());
    labctl::take_lines(buf, collect, true); // nothing left: no empty last line
    CHECK(got.size() == 4);
}

TEST_CASE("take_lines without a callback leaves the buffer alone", "[core][text]") {
    std::string buf = "a\nb";
    labctl::take_lines(buf, {}, true);
    CHECK(buf == "a\nb");
}

TEST_CASE("parse_u64 takes plain decimal numbers only", "[core][text]") {
    CHECK(labctl::parse_u64("42") == 42U);
    CHECK(labctl::parse_u64(" 18446744073709551615\n") == 18446744073709551615ULL);
    CHECK_FALSE(labctl::parse_u64("18446744073709551616")); // overflow
    CHECK_FALSE(labctl::parse_u64("-1"));
    CHECK_FALSE(labctl::parse_u64("+1"));
    CHECK_FALSE(labctl::parse_u64("12k"));
    CHECK_FALSE(labctl::parse_u64(""));
}
