#include <catch2/catch.hpp>

#include <labctl/core/error.hpp>
#include <labctl/provision/provision.hpp>

#include "support.hpp"

using namespace labctl;
using labctl::test::TempDir;

TEST_CASE("image_virtual_size reads a qcow2 header's size and a raw file's length",
          "[provision][image]") {
    TempDir dir;
    std::string qcow2(512, '\0');
    qcow2[0] = 'Q';
    qcow2[1] = 'F';
    qcow2[2] = 'I';
    qcow2[3] = static_cast<char>(0xfb);
    qcow2[27] = 0x01; // size = 0x0000000100000000 + 0x10 (bytes 24..31, big-endian)
    qcow2[31] = 0x10;
    const auto q = dir.write("a.qcow2", qcow2);
    CHECK(provision::image_virtual_size(q.string(), "qcow2") == 0x100000010ULL);
    CHECK(provision::image_virtual_size(q.string(), "raw") == 512);

    const auto raw = dir.write("b.img", std::string(4096, 'x'));
    try {
        provision::image_virtual_size(raw.string(), "qcow2");
        FAIL("a raw file was read as qcow2");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::usage);
        CHECK(std::string(e.what()) == "image " + raw.string() + " is not a qcow2 file");
    }
    CHECK_THROWS_AS(provision::image_virtual_size((dir.path() / "missing").string(), "raw"), Error);
}
