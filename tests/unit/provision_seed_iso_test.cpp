// The read loop over libisofs' burn source that builds the cloud-init seed (src/provision
// seed.cpp, read_iso_image): libisofs' in-memory streams cannot be made to fail, so the loop is
// fed a source that fails or ends early. Every such image is an error naming libisofs and how far
// it got, never a shorter seed that the guest would find truncated.

#include <catch2/catch.hpp>
#include <cstring>
#include <functional>
#include <string>

#include <labctl/core/error.hpp>

#include "../../src/provision/seed_iso.hpp"

using labctl::provision::read_iso_image;

namespace {

/// A source of `blocks` full 2048-byte blocks (block i filled with 'a' + i), then `last`: 0 for
/// the end, < 0 for a read error, or a short count of bytes.
struct Source {
    int blocks = 0;
    int last = 0;
    int served = 0;
    int calls_after_end = 0;

    int operator()(unsigned char* buf, int size) {
        REQUIRE(size == 2048);
        if (served < blocks) {
            std::memset(buf, 'a' + served, 2048);
            ++served;
            return 2048;
        }
        if (served++ > blocks)
            ++calls_after_end;
        if (last > 0)
            std::memset(buf, 'z', static_cast<std::size_t>(last));
        return last;
    }
};

std::string failure(Source& source, std::int64_t expected) {
    try {
        read_iso_image(std::ref(source), expected);
    } catch (const labctl::Error& e) {
        CHECK(e.code() == labctl::ExitCode::internal);
        return e.what();
    }
    FAIL("no error: the image was accepted");
    return {};
}

} // namespace

TEST_CASE("the seed ISO read loop returns every block of a complete image", "[provision][seed]") {
    Source source{.blocks = 5, .last = 0};
    const std::string iso = read_iso_image(std::ref(source), 5 * 2048);
    REQUIRE(iso.size() == 5 * 2048);
    CHECK(iso[0] == 'a');
    CHECK(iso[4 * 2048] == 'e');
    CHECK(source.calls_after_end == 0); // the end (0) is not read past
}

TEST_CASE("a libisofs read error on a 2 KiB boundary fails the seed, naming libisofs and how far "
          "it got",
          "[provision][seed]") {
    Source source{.blocks = 2, .last = -1};
    CHECK(failure(source, 5 * 2048) ==
          "cannot build the cloud-init seed: reading the ISO image from libisofs failed (error "
          "-1) after 4096 of the 10240 bytes it announced");
    // The same when libisofs announced no size: a read error is never the end of the image.
    Source unsized{.blocks = 3, .last = -1};
    CHECK(failure(unsized, -1) == "cannot build the cloud-init seed: reading the ISO image from "
                                  "libisofs failed (error -1) after 6144 bytes (it announced no "
                                  "size)");
}

TEST_CASE("a seed image that ends before the size libisofs announced is an error, never a "
          "shorter seed",
          "[provision][seed]") {
    SECTION("ends on a 2 KiB boundary") {
        Source source{.blocks = 2, .last = 0};
        CHECK(failure(source, 5 * 2048) == "cannot build the cloud-init seed: libisofs gave an "
                                           "incomplete ISO image: 4096 of the 10240 bytes it "
                                           "announced");
    }
    SECTION("ends inside a block") {
        Source source{.blocks = 2, .last = 100};
        CHECK(failure(source, 5 * 2048) == "cannot build the cloud-init seed: libisofs gave an "
                                           "incomplete ISO image: 4196 of the 10240 bytes it "
                                           "announced");
    }
    SECTION("gives nothing") {
        Source source{.blocks = 0, .last = 0};
        CHECK(failure(source, -1) == "cannot build the cloud-init seed: libisofs gave an "
                                     "incomplete ISO image: 0 bytes (it announced no size)");
    }
    SECTION("gives more than it announced") {
        Source source{.blocks = 3, .last = 0};
        CHECK(failure(source, 2 * 2048) == "cannot build the cloud-init seed: libisofs gave a "
                                           "longer ISO image: 6144 of the 4096 bytes it "
                                           "announced");
    }
}
