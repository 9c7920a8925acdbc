// The task API's input validation as pure functions (no server, no network): body parser,
// traceparent validity, query values, ids, media types, UTF-8 and JSON text.

#include <catch2/catch.hpp>
#include <cstdlib>
#include <limits>
#include <new>

#include "json_text.hpp"
#include "task_input.hpp"

using namespace labctl::taskapi;

// Allocation failure on demand, for this thread only: after t_allocations_left successful
// allocations, the next one throws std::bad_alloc and later ones succeed again (a negative count:
// none fails), as when memory is short for a moment.
namespace {
thread_local long t_allocations_left = -1;
} // namespace

void* operator new(std::size_t size) {
    if (t_allocations_left == 0) {
        t_allocations_left = -1;
        throw std::bad_alloc();
    }
    if (t_allocations_left > 0) {
        --t_allocations_left;
    }
    if (void* p = std::malloc(size == 0 ? 1 : size)) {
        return p;
    }
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}

TEST_CASE("taskapi input: request bodies", "[taskapi][unit]") {
    auto r = parse_task_input(R"({"title":"a","description":null,"completed":true,"x":[1]})",
                              InputMode::create);
    REQUIRE(r.input);
    CHECK(*r.input->title == "a");
    CHECK(r.input->description_set);
    CHECK_FALSE(r.input->description);
    CHECK(*r.input->completed);

    r = parse_task_input(R"({"completed":false})", InputMode::update);
    REQUIRE(r.input);
    CHECK_FALSE(r.input->title);
    CHECK_FALSE(r.input->description_set);

    for (const std::string bad :
         {"", "{", "[]", "null", R"({"title":""})", R"({"title":" \t"})", R"({"title":1})",
          R"({"title":"a","completed":"no"})", R"({"title":"a"} x)", "{\"title\":\"\xff\"}",
          R"({"title":"a","a":[[[[[[[[[1]]]]]]]]]})"}) {
        INFO(bad);
        CHECK_FALSE(parse_task_input(bad, InputMode::create).input);
        CHECK_FALSE(parse_task_input(bad, InputMode::create).error.empty());
    }
    CHECK(parse_task_input("{}", InputMode::update).error.find("at least one") !=
          std::string::npos);
    std::string title(200, 'x');
    CHECK(parse_task_input("{\"title\":\"" + title + "\"}", InputMode::create).input);
    CHECK_FALSE(parse_task_input("{\"title\":\"" + title + "x\"}", InputMode::create).input);
}

TEST_CASE("taskapi input: traceparent validity per W3C", "[taskapi][unit]") {
    CHECK(valid_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    CHECK(valid_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
    CHECK(valid_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future"));
    CHECK_FALSE(valid_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"));
    CHECK_FALSE(valid_traceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    CHECK_FALSE(valid_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
    CHECK_FALSE(valid_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));
    CHECK_FALSE(valid_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
    CHECK_FALSE(valid_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7"));
    CHECK_FALSE(valid_traceparent(""));
}

TEST_CASE("taskapi input: ids, delays, counts and media types", "[taskapi][unit]") {
    CHECK(parse_task_id("1") == 1);
    CHECK(parse_task_id("9223372036854775807") == INT64_MAX);
    for (const std::string bad : {"", "0", "-1", "+1", "1.0", "0x1", "9223372036854775808", "1 "}) {
        INFO(bad);
        CHECK_FALSE(parse_task_id(bad));
    }
    CHECK(parse_delay(std::nullopt) == Approx(2.0));
    CHECK(parse_delay(std::string("0.5")) == Approx(0.5));
    CHECK(parse_delay(std::string("100")) == Approx(10.0)); // capped
    for (const std::string bad : {"", "-1", "1e3", "inf", "nan", ".", "1.2.3", "0x1"}) {
        INFO(bad);
        CHECK_FALSE(parse_delay(bad));
    }
    CHECK(parse_count(std::nullopt, 10, 1000) == 10);
    CHECK(parse_count(std::string("1000"), 10, 1000) == 1000);
    CHECK_FALSE(parse_count(std::string("1001"), 10, 1000));
    CHECK(is_json_media_type("application/json"));
    CHECK(is_json_media_type(" Application/JSON ; charset=utf-8"));
    CHECK_FALSE(is_json_media_type("application/jsonx"));
    CHECK_FALSE(is_json_media_type(""));
}

TEST_CASE("taskapi input: UTF-8 and JSON text", "[taskapi][unit]") {
    CHECK(valid_utf8("h\xc3\xa9 \xf0\x9f\x9a\x80"));
    CHECK_FALSE(valid_utf8("\xc0\xaf"));         // overlong
    CHECK_FALSE(valid_utf8("\xed\xa0\x80"));     // surrogate
    CHECK_FALSE(valid_utf8("\xf4\x90\x80\x80")); // above U+10FFFF
    CHECK_FALSE(valid_utf8("\xe2\x82"));         // truncated
    CHECK(utf8_length("h\xc3\xa9\xf0\x9f\x9a\x80") == 3);
    std::string out;
    append_json_string(out, "a\"b\\c\n\x01");
    CHECK(out == R"("a\"b\\c\n\u0001")");
    out.clear();
    append_json_string(out, "\xff");
    CHECK(out == R"("\u00ff")");
    CHECK(error_body("x") == R"({"error":"x"})");
}

TEST_CASE("taskapi input: doubles written to JSON: NaN and infinities become null, never nan/inf",
          "[taskapi][unit]") {
    const auto number = [](double v, int decimals = 6) {
        std::string out;
        append_json_number(out, v, decimals);
        return out;
    };
    CHECK(number(0.25) == "0.250000");
    CHECK(number(2.0, 3) == "2.000");
    CHECK(number(-1.5, 1) == "-1.5");
    CHECK(number(std::numeric_limits<double>::quiet_NaN()) == "null");
    CHECK(number(-std::numeric_limits<double>::quiet_NaN()) == "null");
    CHECK(number(std::numeric_limits<double>::infinity()) == "null");
    CHECK(number(-std::numeric_limits<double>::infinity()) == "null");
    // The largest double still fits (309 digits before the point).
    CHECK(number(std::numeric_limits<double>::max(), 0).size() == 309);
    // Appends: a whole field stays valid JSON.
    std::string line = R"({"duration_seconds":)";
    append_json_number(line, std::numeric_limits<double>::quiet_NaN());
    line += '}';
    CHECK(line == R"({"duration_seconds":null})");
}

TEST_CASE("taskapi input: running out of memory while parsing a body throws bad_alloc, never a "
          "400 'not valid JSON'",
          "[taskapi][unit]") {
    const std::string body =
        R"({"title":"a title long enough not to fit in a short string","description":"a )"
        R"(description that is also longer than the small string buffer","completed":true,)"
        R"("extra":{"nested":[1,2,3,{"k":"v"}]}})";
    REQUIRE(parse_task_input(body, InputMode::create).input);
    int threw = 0;
    int parsed = 0;
    for (long k = 0; k < 400; ++k) {
        bool bad_alloc = false;
        TaskInputResult result;
        t_allocations_left = k;
        try {
            result = parse_task_input(body, InputMode::create);
        } catch (const std::bad_alloc&) {
            bad_alloc = true;
        }
        t_allocations_left = -1;
        INFO("allocation " << k << " failed; error: " << result.error);
        if (bad_alloc) {
            ++threw;
        } else {
            // Either the parse got through without failing an allocation, or it did and said so
            // by throwing: a valid body is never reported as the client's error.
            REQUIRE(result.input);
            ++parsed;
        }
    }
    CHECK(threw > 10); // the failures did hit the parser
    CHECK(parsed > 0); // and k went past its last allocation
}
