// The desired state of a lab, derived from its LabSpec alone.

#include <catch2/catch.hpp>

#include <labctl/config/loader.hpp>
#include <labctl/provision/desired.hpp>
#include <labctl/provision/naming.hpp>

using namespace labctl;
using namespace labctl::provision;

namespace {

config::LabSpec spec_from(const std::string& yaml) {
    const auto result = config::load_lab_text(yaml, "/nonexistent/lab/lab.yaml");
    for (const auto& d : result.diagnostics)
        UNSCOPED_INFO(d.message);
    REQUIRE(result.ok());
    return *result.spec;
}

std::vector<std::pair<std::string, std::string>>
kinds_and_names(const std::vector<DesiredResource>& resources) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& r : resources)
        out.emplace_back(kind_name(r.kind), r.name);
    return out;
}

} // namespace

TEST_CASE("a NAT lab wants network, pool, base image and per VM its four objects",
          "[provision][desired]") {
    const auto spec = spec_from(R"(version: 1
project: lab
libvirt:
  pool: images
  pool_path: /var/lib/libvirt/images/lab
image:
  path: /srv/debian-12.qcow2
vms:
  - name: lab1
    disk: 20GiB
  - name: lab2
    ip: 10.66.77.20
)");
    const auto resources = desired_resources(spec);
    using P = std::pair<std::string, std::string>;
    CHECK(kinds_and_names(resources) == std::vector<P>{
                                            {"network", "lab-net"},
                                            {"pool", "images"},
                                            {"volume", "debian-12.qcow2"},
                                            {"dhcp-host", "lab1"},
                                            {"volume", "lab-lab1.qcow2"},
                                            {"volume", "lab-lab1-seed.iso"},
                                            {"domain", "lab-lab1"},
                                            {"dhcp-host", "lab2"},
                                            {"volume", "lab-lab2.qcow2"},
                                            {"volume", "lab-lab2-seed.iso"},
                                            {"domain", "lab-lab2"},
                                        });
    CHECK(resources[0].detail == "NAT 10.66.77.0/24, gateway 10.66.77.1, domain lab.local");
    CHECK(resources[1].detail == "dir pool at /var/lib/libvirt/images/lab");
    CHECK(resources[2].kind == ResourceKind::base_volume);
    CHECK(resources[2].vm.empty());

    const auto& dhcp = resources[3];
    CHECK(dhcp.kind == ResourceKind::dhcp_host);
    CHECK(dhcp.vm == "lab1");
    CHECK(dhcp.mac == deterministic_mac("lab", "lab1"));
    CHECK(dhcp.ip == "10.66.77.10");
    CHECK(resources[4].kind == ResourceKind::overlay_volume);
    CHECK(resources[4].bytes == (20ULL << 30));
    CHECK(resources[5].kind == ResourceKind::seed_volume);
    const auto& dom = resources[6];
    CHECK(dom.kind == ResourceKind::domain);
    CHECK(dom.spec_hash == vm_spec_hash(spec, spec.vms[0]));
    CHECK(dom.mac == dhcp.mac);
    CHECK(resources[7].ip == "10.66.77.20");
}

TEST_CASE("a user-mode lab wants no network and no DHCP reservations", "[provision][desired]") {
    const auto spec = spec_from(R"(version: 1
project: solo
network:
  mode: user
vms:
  - name: box
)");
    using P = std::pair<std::string, std::string>;
    CHECK(kinds_and_names(desired_resources(spec)) == std::vector<P>{
                                                          {"pool", "default"},
                                                          {"volume", "solo-box.qcow2"},
                                                          {"volume", "solo-box-seed.iso"},
                                                          {"domain", "solo-box"},
                                                      });
}

TEST_CASE("a pool without pool_path is wanted but must exist", "[provision][desired]") {
    const auto spec = spec_from("version: 1\nproject: lab\nvms:\n  - name: a\n");
    const auto resources = desired_resources(spec);
    REQUIRE(resources.size() > 1);
    CHECK(resources[1].kind == ResourceKind::pool);
    CHECK(resources[1].detail == "storage pool (must exist)");
}
