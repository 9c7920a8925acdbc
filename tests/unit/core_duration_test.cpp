#include <catch2/catch.hpp>

#include <labctl/core/duration.hpp>

using namespace std::chrono_literals;
using labctl::format_duration;
using labctl::parse_duration;

TEST_CASE("durations parse with units and combinations", "[core][duration]") {
    CHECK(parse_duration("90s") == 90s);
    CHECK(parse_duration("5m") == 5min);
    CHECK(parse_duration("1h30m") == 90min);
    CHECK(parse_duration("250ms") == 250ms);
    CHECK(parse_duration("30") == 30s);
    CHECK(parse_duration("0s") == 0s);
}

TEST_CASE("malformed durations are rejected", "[core][duration]") {
    for (const char* bad : {"", "s", "5x", "-5s", "5 s", "1.5s", "5m3", "99999999999999999999h"})
        CHECK_FALSE(parse_duration(bad).has_value());
}

TEST_CASE("durations format for humans", "[core][duration]") {
    CHECK(format_duration(850ms) == "850ms");
    CHECK(format_duration(12300ms) == "12.3s");
    CHECK(format_duration(245s) == "4m05s");
    CHECK(format_duration(3720s) == "1h02m");
}
