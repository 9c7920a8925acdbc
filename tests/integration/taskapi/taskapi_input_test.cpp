// The task API's input validation as pure functions (no server, no network): request heads, body
// parser, traceparent validity, query values, ids, media types, UTF-8 and JSON text.

#include <catch2/catch.hpp>
#include <cstdlib>
#include <limits>
#include <new>

#include "json_text.hpp"
#include "request_head.hpp"
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

namespace {

struct HeadResult {
    HeadReader::Step step = HeadReader::Step::more;
    std::size_t consumed = 0; ///< bytes fed until the reader finished
    HeadReader reader;        ///< head() after done, refusal() after refused
};

HeadResult read_head(const std::string& bytes) {
    HeadResult out;
    for (const char c : bytes) {
        ++out.consumed;
        out.step = out.reader.feed(c);
        if (out.step != HeadReader::Step::more)
            break;
    }
    return out;
}

} // namespace

TEST_CASE("taskapi input: request heads are read up to their empty line, with our limits and "
          "statuses",
          "[taskapi][unit]") {
    const std::string body = "{\"title\":\"x\"}";
    const std::string head = "POST /api/tasks?a=1 HTTP/1.1\r\nHost: h\r\nContent-Type:  "
                             "application/json \r\nContent-Length: 13\r\n\r\n";
    auto r = read_head(head + body);
    REQUIRE(r.step == HeadReader::Step::done);
    CHECK(r.consumed == head.size()); // the body is left for the body stream
    const RequestHead& h = r.reader.head();
    CHECK(h.method == "POST");
    CHECK(h.target == "/api/tasks?a=1");
    CHECK(h.version == "HTTP/1.1");
    REQUIRE(h.fields.size() == 3);
    CHECK(h.fields[1].first == "Content-Type");
    CHECK(h.fields[1].second == "application/json");
    CHECK(h.content_length == std::optional<std::uint64_t>(13));
    CHECK_FALSE(h.chunked);

    const auto status = [](const std::string& bytes) {
        const auto x = read_head(bytes);
        return x.step == HeadReader::Step::refused ? x.reader.refusal().status
               : x.step == HeadReader::Step::done  ? 0
                                                   : -1;
    };
    const auto get = [](const std::string& fields) {
        return "GET / HTTP/1.1\r\n" + fields + "\r\n";
    };
    CHECK(status(get("X: " + std::string(k_max_field_value_bytes, 'v') + "\r\n")) == 0);
    CHECK(status(get("X: " + std::string(k_max_field_value_bytes + 1, 'v') + "\r\n")) == 431);
    CHECK(status(get(std::string(k_max_field_name_bytes, 'n') + ": v\r\n")) == 0);
    CHECK(status(get(std::string(k_max_field_name_bytes + 1, 'n') + ": v\r\n")) == 431);
    std::string many;
    for (std::size_t i = 0; i < k_max_fields; ++i)
        many += "X" + std::to_string(i) + ": v\r\n";
    CHECK(status(get(many)) == 0);
    CHECK(status(get(many + "One-More: v\r\n")) == 431);
    CHECK(status("GET /" + std::string(k_max_target_bytes - 1, 'u') + " HTTP/1.1\r\n\r\n") == 0);
    CHECK(status("GET /" + std::string(k_max_target_bytes, 'u') + " HTTP/1.1\r\n\r\n") == 414);
    CHECK(status("GET /" + std::string(3 * k_max_target_bytes, 'u')) == 414); // cut short
    CHECK(status(std::string(k_max_method_bytes + 1, 'M') + " / HTTP/1.1\r\n\r\n") == 400);
    CHECK(status("GET / HTTP/3.0\r\n\r\n") == 505);
    CHECK(status(get("Transfer-Encoding: gzip\r\n")) == 501);
    CHECK(status(get("Transfer-Encoding: Chunked\r\n")) == 0);
    CHECK(status(get("Content-Length: 1x\r\n")) == 400);
    CHECK(status(get("Content-Length: 1234567890123456789\r\n")) == 400); // 19 digits
    CHECK(status(get("X: a\r\n b\r\n")) == 400);                          // folding
    CHECK(status(std::string("GET / HTTP/1.1\r\nX: a") + '\0' + "b\r\n\r\n") == 400);
    CHECK(status("GET / HTTP/1.1\r\nHost: x\r\n") == -1); // no empty line yet: more
}
