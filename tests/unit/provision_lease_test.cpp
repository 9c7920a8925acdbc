// pick_lease: which of a MAC's DHCP leases is the VM's address (mode nat).

#include <catch2/catch.hpp>

#include <labctl/provision/wait.hpp>

using labctl::provision::pick_lease;

TEST_CASE("pick_lease: the reserved address wins over a lease left from before", "[provision]") {
    CHECK(pick_lease({"10.77.88.10", "10.77.88.11"}, std::string("10.77.88.11")) == "10.77.88.11");
    CHECK(pick_lease({"10.77.88.11", "10.77.88.10"}, std::string("10.77.88.11")) == "10.77.88.11");
}

TEST_CASE("pick_lease: without the reserved address among them, the first lease", "[provision]") {
    CHECK(pick_lease({"10.77.88.10", "10.77.88.12"}, std::string("10.77.88.11")) == "10.77.88.10");
    CHECK(pick_lease({"10.77.88.10", "10.77.88.12"}, std::nullopt) == "10.77.88.10");
    CHECK_FALSE(pick_lease({}, std::string("10.77.88.11")).has_value());
    CHECK_FALSE(pick_lease({}, std::nullopt).has_value());
}
