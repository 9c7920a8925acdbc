#include <catch2/catch.hpp>

#include <labctl/config/lab_spec.hpp>
#include <labctl/core/encoding.hpp>
#include <labctl/image/checksums.hpp>
#include <labctl/provision/naming.hpp>

using namespace labctl;
using namespace labctl::image;

namespace {

const std::string k_a256(64, 'a');
const std::string k_b512(128, 'b');

} // namespace

TEST_CASE("find_checksum reads Debian's SHA512SUMS layout (two spaces, text mode)", "[image]") {
    const std::string text = std::string(128, 'c') + "  debian-12-generic-amd64.qcow2\n" + k_b512 +
                             "  debian-12-genericcloud-amd64.qcow2\n";
    const auto d = find_checksum(text, "debian-12-genericcloud-amd64.qcow2", "sha512");
    REQUIRE(d);
    CHECK(d->algorithm == "sha512");
    CHECK(d->hex == k_b512);
}

TEST_CASE("find_checksum reads Ubuntu's SHA256SUMS layout (binary mode '*NAME')", "[image]") {
    const std::string text = k_a256 + " *noble-server-cloudimg-amd64.img\n";
    const auto d = find_checksum(text, "noble-server-cloudimg-amd64.img", "");
    REQUIRE(d);
    CHECK(d->algorithm == "sha256");
    CHECK(d->hex == k_a256);
}

TEST_CASE("find_checksum reads the BSD layout, upper-case hex, './' prefixes and skips comments",
          "[image]") {
    const std::string upper(64, 'A');
    const std::string text = "# made by sha256sum --tag\n"
                             "SHA256 (./disk.qcow2) = " +
                             upper + "\r\n";
    const auto d = find_checksum(text, "disk.qcow2", "sha256");
    REQUIRE(d);
    CHECK(d->hex == std::string(64, 'a'));
}

TEST_CASE("find_checksum finds nothing for another name, another algorithm or a malformed line",
          "[image]") {
    const std::string text =
        k_a256 + "  disk.qcow2\nnot-hex  other.qcow2\n" + k_a256.substr(1) + "  short.qcow2\n";
    CHECK_FALSE(find_checksum(text, "disk.qcow", ""));
    CHECK_FALSE(find_checksum(text, "disk.qcow2", "sha512"));
    CHECK_FALSE(find_checksum(text, "other.qcow2", ""));
    CHECK_FALSE(find_checksum(text, "short.qcow2", ""));
    CHECK(checksum_names(text, 5) == std::vector<std::string>{"disk.qcow2"});
}

TEST_CASE("url_file_name drops the query and fragment and decodes percent escapes", "[image]") {
    CHECK(url_file_name("https://cloud.debian.org/images/cloud/bookworm/latest/"
                        "debian-12-genericcloud-amd64.qcow2?x=1#y") ==
          "debian-12-genericcloud-amd64.qcow2");
    CHECK(url_file_name("http://h/dir/my%20image.img") == "my image.img");
    CHECK(url_file_name("http://h/dir/bad%zzescape") == "bad%zzescape");
    CHECK(url_file_name("file:///srv/images/") == "images");
}

TEST_CASE("checksums_algorithm tells SHA256SUMS from SHA512SUMS by the file's name", "[image]") {
    CHECK(checksums_algorithm("https://cloud-images.ubuntu.com/noble/current/SHA256SUMS") ==
          "sha256");
    CHECK(checksums_algorithm("https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS") ==
          "sha512");
    CHECK(checksums_algorithm("https://example.org/CHECKSUMS").empty());
}

TEST_CASE("Digest computes SHA-256 and SHA-512 incrementally, as sha256sum and sha512sum do",
          "[image]") {
    Digest a("sha256");
    a.update("a");
    a.update("bc");
    CHECK(a.finish_hex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    Digest b("sha512");
    b.update("abc");
    CHECK(
        b.finish_hex() ==
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a"
        "3feebbd454d4423643ce80e2a9ac94fa54ca49f");
    CHECK_THROWS_AS(Digest("md5"), std::invalid_argument);
}

TEST_CASE("a downloaded image's base volume keeps the URL's name once its cache path is known",
          "[image]") {
    config::ImageSpec img;
    img.url = "https://cloud.debian.org/images/cloud/bookworm/latest/"
              "debian-12-genericcloud-amd64.qcow2";
    const auto before = provision::base_volume_name(img);
    img.path = "/var/cache/labctl/images/downloads/sha512-" + k_b512 + ".qcow2";
    CHECK(provision::base_volume_name(img) == before);
    CHECK(before == "debian-12-genericcloud-amd64.qcow2");
}
