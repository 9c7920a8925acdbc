#include <catch2/catch.hpp>

#include <labctl/core/encoding.hpp>

using namespace labctl;

TEST_CASE("sha256 matches the NIST test vectors", "[core][encoding]") {
    CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    Sha256 million;
    const std::string chunk(1000, 'a');
    for (int i = 0; i < 1000; ++i)
        million.update(chunk);
    const auto d = million.finish();
    CHECK(to_hex(std::string_view(reinterpret_cast<const char*>(d.data()), d.size())) ==
          "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("base64 round-trips and matches RFC 4648 vectors", "[core][encoding]") {
    CHECK(base64_encode("") == "");
    CHECK(base64_encode("f") == "Zg==");
    CHECK(base64_encode("fo") == "Zm8=");
    CHECK(base64_encode("foo") == "Zm9v");
    CHECK(base64_encode("foobar") == "Zm9vYmFy");
    CHECK(base64_encode("fo", false) == "Zm8");
    CHECK(base64_decode("Zm9vYmE=") == std::optional<std::string>("fooba"));
    CHECK(base64_decode("Zm9vYmE") == std::optional<std::string>("fooba"));
    CHECK_FALSE(base64_decode("Zm9v!").has_value());
    CHECK(to_hex("\x01\xab") == "01ab");
}
