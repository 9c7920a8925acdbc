#include <catch2/catch.hpp>

#include <labctl/core/error.hpp>
#include <labctl/remote/known_hosts.hpp>
#include <labctl/remote/session.hpp>

#include "support.hpp"

using namespace labctl;

TEST_CASE("known_hosts patterns use brackets for non-22 ports", "[remote]") {
    CHECK(remote::known_hosts_pattern("lab1", 22) == "lab1");
    CHECK(remote::known_hosts_pattern("127.0.0.1", 2222) == "[127.0.0.1]:2222");
}

TEST_CASE("pinning replaces a host's keys and keeps other hosts", "[remote]") {
    test::TempDir dir;
    const auto path = dir.write("known_hosts", "other ssh-ed25519 AAAAother\n"
                                               "[127.0.0.1]:2222 ssh-ed25519 AAAAold\n")
                          .string();
    remote::pin_host_keys(path, "127.0.0.1", 2222,
                          {"ssh-ed25519 AAAAnew comment", "ssh-rsa AAAArsa"});
    const auto found = remote::find_known_hosts(path, "127.0.0.1", 2222);
    REQUIRE(found.size() == 2);
    CHECK(found[0].key_base64 == "AAAAnew");
    CHECK(found[1].key_type == "ssh-rsa");
    CHECK(remote::find_known_hosts(path, "other", 22).size() == 1);
    CHECK(test::read_file(path).find("AAAAold") == std::string::npos);
}

TEST_CASE("forgetting a key removes it under every address it was pinned at and keeps the rest",
          "[remote]") {
    test::TempDir dir;
    const std::string other = "jump.example ssh-ed25519 AAAAjump\n";
    const auto path = dir.write("known_hosts", "10.77.88.10 ssh-ed25519 AAAAvm\n" + other +
                                                   "# a comment naming AAAAvm stays\n"
                                                   "[127.0.0.1]:2222 ssh-ed25519 AAAAvm\n")
                          .string();
    CHECK(remote::forget_host_keys(path, {"ssh-ed25519 AAAAvm lab1@lab"}) == 2);
    CHECK(test::read_file(path) == other + "# a comment naming AAAAvm stays\n");
    // Nothing to forget: the file is left as it is; a missing file is not an error.
    CHECK(remote::forget_host_keys(path, {"ssh-ed25519 AAAAvm"}) == 0);
    CHECK(remote::forget_host_keys((dir.path() / "missing").string(), {"ssh-ed25519 AAAAvm"}) == 0);
    CHECK_FALSE(std::filesystem::exists(dir.path() / "missing"));
}

TEST_CASE("endpoints parse user, host and port with defaults", "[remote]") {
    const remote::Endpoint defaults{"", 22, "labctl"};
    auto ep = remote::parse_endpoint("admin@10.0.0.5:2200", defaults);
    CHECK(ep.user == "admin");
    CHECK(ep.host == "10.0.0.5");
    CHECK(ep.port == 2200);
    ep = remote::parse_endpoint("lab1", defaults);
    CHECK(ep.user == "labctl");
    CHECK(ep.port == 22);
    ep = remote::parse_endpoint("[::1]:2222", defaults);
    CHECK(ep.host == "::1");
    CHECK(ep.port == 2222);
    CHECK_THROWS_AS(remote::parse_endpoint("host:99999", defaults), Error);
    CHECK_THROWS_AS(remote::parse_endpoint("host:abc", defaults), Error);
}

TEST_CASE("labctl's SSH client reports the algorithms it supports", "[remote]") {
    const auto ciphers = remote::client_algorithms("cipher");
    CHECK(std::find(ciphers.begin(), ciphers.end(), "aes128-ctr") != ciphers.end());
    const auto hostkeys = remote::client_algorithms("hostkey");
    CHECK(std::find(hostkeys.begin(), hostkeys.end(), "ssh-ed25519") != hostkeys.end());
    CHECK_THROWS_AS(remote::client_algorithms("nonsense"), Error);
}
