// File checksums for image verification (the SHA-256 itself is core's, tested in core).

#include <catch2/catch.hpp>
#include <filesystem>

#include <labctl/core/encoding.hpp>
#include <labctl/core/error.hpp>
#include <labctl/provision/checksum.hpp>

#include "support.hpp"

using labctl::provision::sha256_file_hex;

TEST_CASE("the sha256 of a file equals the sha256 of its contents", "[provision][checksum]") {
    labctl::test::TempDir dir;
    CHECK(sha256_file_hex(dir.write("empty", "").string()) ==
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(sha256_file_hex(dir.write("abc", "abc").string()) ==
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    // Larger than one read chunk (1 MiB) and not a multiple of it.
    std::string data(3 << 20, 'x');
    data += "tail";
    CHECK(sha256_file_hex(dir.write("image.raw", data).string()) == labctl::sha256_hex(data));
}

TEST_CASE("the sha256 of a missing file is an error naming it", "[provision][checksum]") {
    labctl::test::TempDir dir;
    const auto missing = (dir.path() / "missing.qcow2").string();
    try {
        sha256_file_hex(missing);
        FAIL("no error");
    } catch (const labctl::Error& e) {
        CHECK(e.code() == labctl::ExitCode::usage);
        CHECK(std::string(e.what()) == "cannot read " + missing + ": No such file or directory");
    }
}

TEST_CASE("the sha256 of a file that opens but cannot be read is an error naming it and the "
          "errno, never the digest of what was read so far",
          "[provision][checksum]") {
    // A directory opens O_RDONLY like a file; read(2) on it then fails with EISDIR.
    labctl::test::TempDir dir;
    const auto path = (dir.path() / "image.qcow2").string();
    std::filesystem::create_directory(path);
    try {
        const auto digest = sha256_file_hex(path);
        FAIL("no error, digest " << digest);
    } catch (const labctl::Error& e) {
        CHECK(e.code() == labctl::ExitCode::usage);
        CHECK(std::string(e.what()) == "error while reading " + path + ": Is a directory");
        CHECK_FALSE(e.hint().empty());
    }
}
