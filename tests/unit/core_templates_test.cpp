#include <algorithm>
#include <catch2/catch.hpp>

#include <labctl/core/error.hpp>
#include <labctl/core/table.hpp>
#include <labctl/core/templates.hpp>

using namespace labctl;

TEST_CASE("templates render placeholders and reject unknown ones", "[core][templates]") {
    CHECK(templates::render("a {{ x }} b {{y}}", {{"x", "1"}, {"y", "2"}}) == "a 1 b 2");
    CHECK_THROWS_AS(templates::render("{{ missing }}", {}), Error);
    CHECK_THROWS_AS(templates::render("{{ open", {}), Error);
}

TEST_CASE("templates under templates/ are embedded into the binary", "[core][templates]") {
    const auto names = templates::names();
    CHECK(std::find(names.begin(), names.end(), "lab.yaml") != names.end());
    CHECK_FALSE(templates::load("lab.yaml").empty());
    CHECK_THROWS_AS(templates::load("no/such/template"), Error);
}

TEST_CASE("tables pad columns to the widest cell", "[core][table]") {
    Table t({"CHECK", "STATUS", "EVIDENCE"});
    t.add({"kvm", "ok", "/dev/kvm usable"});
    t.add({"libvirt.uri", "fail", "x"});
    CHECK(t.render() == "CHECK        STATUS  EVIDENCE\n"
                        "kvm          ok      /dev/kvm usable\n"
                        "libvirt.uri  fail    x\n");
}
