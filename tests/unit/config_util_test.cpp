// The config module's small parsers: sizes, did-you-mean, IPv4 addresses and networks.

#include <catch2/catch.hpp>

#include <labctl/config/ipv4.hpp>
#include <labctl/config/loader.hpp>
#include <labctl/config/suggest.hpp>

using labctl::config::did_you_mean;
using labctl::config::edit_distance;
using labctl::config::format_size;
using labctl::config::parse_size;

namespace {
constexpr std::uint64_t k_kib = 1024;
constexpr std::uint64_t k_mib = k_kib * 1024;
constexpr std::uint64_t k_gib = k_mib * 1024;
constexpr std::uint64_t k_tib = k_gib * 1024;
} // namespace

TEST_CASE("sizes parse with binary and decimal units", "[config][size]") {
    CHECK(parse_size("4GiB") == 4 * k_gib);
    CHECK(parse_size("512MiB") == 512 * k_mib);
    CHECK(parse_size("1TiB") == k_tib);
    CHECK(parse_size("64KiB") == 64 * k_kib);
    CHECK(parse_size("2K") == 2 * k_kib);
    CHECK(parse_size("20G") == 20 * k_gib);
    CHECK(parse_size("8M") == 8 * k_mib);
    CHECK(parse_size("2T") == 2 * k_tib);
    CHECK(parse_size("20GB") == 20'000'000'000ULL);
    CHECK(parse_size("500MB") == 500'000'000ULL);
    CHECK(parse_size("1TB") == 1'000'000'000'000ULL);
    CHECK(parse_size("1.5GiB") == 1536 * k_mib);
    CHECK(parse_size("0.5K") == 512);
    CHECK(parse_size("4 GiB") == 4 * k_gib); // what format_size prints reads back
    CHECK(parse_size("4gib") == 4 * k_gib);
    CHECK(parse_size("100B") == 100);
    CHECK(parse_size("0GiB") == 0);
    CHECK(parse_size("16777215TiB") == 16777215 * k_tib); // 2^64 - 2^40: still fits
}

TEST_CASE("malformed, unitless, negative and overflowing sizes are rejected", "[config][size]") {
    for (const char* bad : {"",
                            "4096",
                            "4",
                            "1.5",
                            "GiB",
                            "-4GiB",
                            "+4GiB",
                            "4 gigs",
                            "4GiB ",
                            " 4GiB",
                            "4  GiB",
                            "4.GiB",
                            ".5G",
                            "1.2.3G",
                            "4XB",
                            "4PiB",
                            "4 G i B",
                            "4GiB4",
                            "1.1234567G",
                            "16777216TiB",
                            "99999999999999999999GiB",
                            "18446744073709551616B"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_size(bad).has_value());
    }
}

TEST_CASE("sizes format in the largest exact binary unit", "[config][size]") {
    CHECK(format_size(4 * k_gib) == "4 GiB");
    CHECK(format_size(512 * k_mib) == "512 MiB");
    CHECK(format_size(1536 * k_mib) == "1536 MiB");
    CHECK(format_size(k_tib) == "1 TiB");
    CHECK(format_size(2048) == "2 KiB");
    CHECK(format_size(1000) == "1000 B");
    CHECK(format_size(0) == "0 B");
    for (const std::uint64_t n : {k_gib, 3 * k_mib, 7 * k_tib, 5 * k_kib})
        CHECK(parse_size(format_size(n)) == n);
}

TEST_CASE("edit distance counts neighbour swaps as one edit", "[config][suggest]") {
    CHECK(edit_distance("kitten", "sitting") == 3);
    CHECK(edit_distance("nmae", "name") == 1);
    CHECK(edit_distance("", "abc") == 3);
    CHECK(edit_distance("abc", "") == 3);
    CHECK(edit_distance("same", "same") == 0);
    CHECK(edit_distance("CPUS", "cpus") == 0);
}

TEST_CASE("did you mean suggests close words only", "[config][suggest]") {
    const std::vector<std::string> keys{"name", "cpus", "memory", "disk", "ip", "roles"};
    CHECK(did_you_mean("cpu", keys) == "cpus");
    CHECK(did_you_mean("nmae", keys) == "name");
    CHECK(did_you_mean("memroy", keys) == "memory");
    CHECK(did_you_mean("Memory", keys) == "memory");
    CHECK(did_you_mean("rolse", keys) == "roles");
    CHECK(did_you_mean("dsk", keys) == "disk");
    CHECK_FALSE(did_you_mean("color", keys));
    CHECK_FALSE(did_you_mean("", keys));
    CHECK_FALSE(did_you_mean("x", {}));
    // Short words need a closer match: "io" is 1 edit from "ip", "os" is 2.
    CHECK(did_you_mean("io", keys) == "ip");
    CHECK_FALSE(did_you_mean("os", keys));
    const std::vector<std::string> checks{"stack.health", "prometheus.targets", "trace.e2e"};
    CHECK(did_you_mean("prometheus.target", checks) == "prometheus.targets");
    CHECK(did_you_mean("stack-health", checks) == "stack.health");
    CHECK(did_you_mean("trace.e2", checks) == "trace.e2e");
    // A tie goes to the earlier candidate.
    CHECK(did_you_mean("ab", {"ax", "ay"}) == "ax");
}

TEST_CASE("IPv4 addresses parse strictly", "[config][ipv4]") {
    using labctl::config::format_ipv4;
    using labctl::config::parse_ipv4;
    CHECK(parse_ipv4("10.66.77.10") == 0x0A424D0AU);
    CHECK(parse_ipv4("0.0.0.0") == 0U);
    CHECK(parse_ipv4("255.255.255.255") == 0xFFFFFFFFU);
    for (const char* bad : {"", "10.66.77", "10.66.77.256", "010.1.1.1", "1.2.3.4.5", "a.b.c.d",
                            "1..2.3", "1.2.3.4 ", "-1.2.3.4", "1.2.3.4/24"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_ipv4(bad));
    }
    CHECK(format_ipv4(0x0A424D0AU) == "10.66.77.10");
}

TEST_CASE("IPv4 networks know their gateway and broadcast", "[config][ipv4]") {
    using labctl::config::format_ipv4;
    using labctl::config::parse_cidr;
    const auto net = parse_cidr("10.66.76.0/23");
    REQUIRE(net);
    CHECK(net->prefix == 23);
    CHECK(format_ipv4(net->netmask()) == "255.255.254.0");
    CHECK(format_ipv4(net->gateway()) == "10.66.76.1");
    CHECK(format_ipv4(net->broadcast()) == "10.66.77.255");
    CHECK(format_ipv4(net->last_host()) == "10.66.77.254");
    CHECK(net->contains(*labctl::config::parse_ipv4("10.66.77.3")));
    CHECK_FALSE(net->contains(*labctl::config::parse_ipv4("10.66.78.3")));
    CHECK(net->to_string() == "10.66.76.0/23");
    for (const char* bad : {"10.66.77.5/24", "10.66.77.0/33", "10.66.77.0", "10.66.77.0/024",
                            "10.66.77.0/", "10.66.77.0/x", "/24"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_cidr(bad));
    }
    CHECK(parse_cidr("0.0.0.0/0"));
}
