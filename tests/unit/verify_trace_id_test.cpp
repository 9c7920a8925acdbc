// Trace and span ids arrive as hex, base64 (Tempo span JSON) and zero-stripped hex (Tempo
// search); all normalise to lowercase hex of the full width.

#include <catch2/catch.hpp>

#include <labctl/core/encoding.hpp>
#include <labctl/verify/trace_id.hpp>

using labctl::verify::normalize_span_id;
using labctl::verify::normalize_trace_id;

TEST_CASE("verify trace id: 32 hex digits are lower-cased", "[verify][unit]") {
    CHECK(normalize_trace_id("4BF92F3577B34DA6A3CE929D0E0E4736") ==
          "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(normalize_trace_id(" 4bf92f3577b34da6a3ce929d0e0e4736\n") ==
          "4bf92f3577b34da6a3ce929d0e0e4736");
}

TEST_CASE("verify trace id: base64 of the 16 bytes (Tempo) decodes to the same hex",
          "[verify][unit]") {
    // S/kvNXezTaajzpKdDg5HNg== is the W3C example id 4bf92f35… in base64.
    CHECK(normalize_trace_id("S/kvNXezTaajzpKdDg5HNg==") == "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(normalize_trace_id("S/kvNXezTaajzpKdDg5HNg") == "4bf92f3577b34da6a3ce929d0e0e4736");
    const std::string raw("\x00\x00\x00\x00\x00\xa1\xb2\xc3\xd4\xe5\xf6\x07\x18\x29\x3a\x4b", 16);
    CHECK(normalize_trace_id(labctl::base64_encode(raw)) == "0000000000a1b2c3d4e5f60718293a4b");
}

TEST_CASE("verify trace id: zero-stripped hex from Tempo search is padded back", "[verify][unit]") {
    CHECK(normalize_trace_id("a1b2c3d4e5f60718293a4b") == "0000000000a1b2c3d4e5f60718293a4b");
    CHECK(normalize_trace_id("1") == "00000000000000000000000000000001");
    CHECK(normalize_trace_id("4bf92f3577b34da6a3ce929d0e0e47") ==
          "004bf92f3577b34da6a3ce929d0e0e47");
}

TEST_CASE("verify trace id: invalid and all-zero ids are rejected", "[verify][unit]") {
    CHECK_FALSE(normalize_trace_id(""));
    CHECK_FALSE(normalize_trace_id("00000000000000000000000000000000"));
    CHECK_FALSE(normalize_trace_id("4bf92f3577b34da6a3ce929d0e0e4736ff")); // too long
    CHECK_FALSE(normalize_trace_id("not a trace id!"));
    CHECK_FALSE(normalize_trace_id("AAA/")); // base64, but of 3 bytes
}

TEST_CASE("verify span id: hex, base64 and stripped spellings give 16 hex digits",
          "[verify][unit]") {
    CHECK(normalize_span_id("00F067AA0BA902B7") == "00f067aa0ba902b7");
    CHECK(normalize_span_id("APBnqgupArc=") == "00f067aa0ba902b7");
    CHECK(normalize_span_id("f067aa0ba902b7") == "00f067aa0ba902b7");
    CHECK_FALSE(normalize_span_id("S/kvNXezTaajzpKdDg5HNg=="));
}

TEST_CASE("verify trace id: generated ids are valid W3C traceparent parts", "[verify][unit]") {
    const auto t = labctl::verify::random_trace_id();
    const auto s = labctl::verify::random_span_id();
    CHECK(t.size() == 32);
    CHECK(s.size() == 16);
    CHECK(normalize_trace_id(t) == t);
    CHECK(normalize_span_id(s) == s);
    CHECK(labctl::verify::traceparent(t, s) == "00-" + t + "-" + s + "-01");
    CHECK(labctl::verify::random_trace_id() != t);
}
