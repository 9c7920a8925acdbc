// plan_against: the pure comparison of a LabSpec with an Inventory (no libvirt involved).

#include <catch2/catch.hpp>

#include <labctl/config/loader.hpp>
#include <labctl/core/error.hpp>
#include <labctl/provision/naming.hpp>
#include <labctl/provision/network.hpp>
#include <labctl/provision/plan.hpp>

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

const std::string k_lab = R"(version: 1
project: lab
network:
  name: lab-net
  cidr: 10.66.77.0/24
image:
  path: /srv/base.qcow2
vms:
  - name: lab1
    disk: 20GiB
)";

config::Ipv4Network net(const std::string& cidr) {
    const auto n = config::parse_cidr(cidr);
    REQUIRE(n);
    return *n;
}

/// What a fully provisioned k_lab looks like.
Inventory provisioned(const config::LabSpec& spec) {
    Inventory inv;
    NetworkFacts n;
    n.name = "lab-net";
    n.active = true;
    n.bridge = "virbr9";
    n.subnets = {net("10.66.77.0/24")};
    n.dhcp_hosts = {{deterministic_mac("lab", "lab1"), "lab1", "10.66.77.10"}};
    n.labctl = LabctlMetadata{"lab", "", ""};
    inv.networks.push_back(n);
    PoolFacts p;
    p.name = "default";
    p.type = "dir";
    p.path = "/var/lib/libvirt/images";
    p.active = true;
    p.volumes_known = true;
    p.available = 100ULL << 30;
    p.volumes = {{"base.qcow2", "", 2ULL << 30},
                 {"lab-lab1.qcow2", "", 20ULL << 30},
                 {"lab-lab1-seed.iso", "", 1 << 20}};
    inv.pools.push_back(p);
    const auto& vm = spec.vms[0];
    // As provision records it: the spec hash and the sizes it was made with.
    inv.domains.push_back(
        {"lab-lab1", true,
         LabctlMetadata{"lab", "lab1", vm_spec_hash(spec, vm), static_cast<unsigned>(vm.cpus),
                        vm.memory_bytes, vm.disk_bytes}});
    return inv;
}

const PlanItem* item(const Plan& plan, ResourceKind kind, const std::string& name) {
    for (const auto& i : plan.items)
        if (i.kind == kind && i.name == name)
            return &i;
    return nullptr;
}

std::string error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::preflight);
        CHECK_FALSE(e.hint().empty());
        return e.what();
    }
    FAIL("no error");
    return {};
}

} // namespace

TEST_CASE("a fully provisioned lab plans no changes", "[provision][plan]") {
    const auto spec = spec_from(k_lab);
    const auto plan = plan_against(spec, provisioned(spec), {});
    CHECK_FALSE(plan.has_changes());
    CHECK(plan.count(PlanAction::keep) == 7);
    CHECK(plan.summary() ==
          "Plan: 0 to create, 7 to keep, 0 to update, 0 to replace, 0 to delete.");
    CHECK(plan.warnings.empty());
    CHECK(plan.disruptive().empty());
}

TEST_CASE("an empty host plans everything as create, in creation order", "[provision][plan]") {
    const auto spec = spec_from(k_lab + "libvirt:\n  pool_path: /srv/pool\n");
    const auto plan = plan_against(spec, Inventory{}, {});
    REQUIRE(plan.items.size() == 7);
    for (const auto& i : plan.items)
        CHECK(i.action == PlanAction::create);
    CHECK(plan.items.front().kind == ResourceKind::network);
    CHECK(plan.items.back().kind == ResourceKind::domain);
    CHECK(plan.has_changes());
}

TEST_CASE("a changed spec other than sizes replaces the domain, its seed and its disk, saying "
          "that the disk's data is lost",
          "[provision][plan]") {
    const auto before = spec_from(k_lab);
    const auto after = spec_from(k_lab + "libvirt:\n  domain_type: qemu\n");
    const auto plan = plan_against(after, provisioned(before), {});
    const auto* domain = item(plan, ResourceKind::domain, "lab-lab1");
    CHECK(domain->action == PlanAction::replace);
    CHECK(domain->restarts); // it runs
    CHECK(item(plan, ResourceKind::seed_volume, "lab-lab1-seed.iso")->action ==
          PlanAction::replace);
    const auto* disk = item(plan, ResourceKind::overlay_volume, "lab-lab1.qcow2");
    CHECK(disk->action == PlanAction::replace);
    CHECK(disk->loses_data);
    CHECK(disk->detail.find("the data on it is lost") != std::string::npos);
    CHECK(plan.disruptive().size() == 2);
}

TEST_CASE("a larger disk is grown in place: only the disk is updated, nothing else changes",
          "[provision][plan]") {
    const auto before = spec_from(k_lab);
    auto yaml = k_lab;
    yaml.replace(yaml.find("disk: 20GiB"), 11, "disk: 22GiB");
    const auto after = spec_from(yaml);
    const auto plan = plan_against(after, provisioned(before), {});
    const auto* disk = item(plan, ResourceKind::overlay_volume, "lab-lab1.qcow2");
    REQUIRE(disk);
    CHECK(disk->action == PlanAction::update);
    CHECK(disk->detail.find("capacity 20 GiB -> 22 GiB: grown in place, then its file system; "
                            "its data is kept") != std::string::npos);
    CHECK(item(plan, ResourceKind::domain, "lab-lab1")->action == PlanAction::keep);
    CHECK(item(plan, ResourceKind::seed_volume, "lab-lab1-seed.iso")->action == PlanAction::keep);
    CHECK(plan.count(PlanAction::update) == 1);
    CHECK(plan.disruptive().empty()); // nothing restarts, nothing is lost: no question asked
    CHECK(plan.summary() ==
          "Plan: 0 to create, 6 to keep, 1 to update, 0 to replace, 0 to delete.");
}

TEST_CASE("a disk found smaller than lab.yaml says is grown, also with an unchanged spec",
          "[provision][plan]") {
    const auto spec = spec_from(k_lab);
    auto inv = provisioned(spec);
    inv.pools[0].volumes[1].capacity = 10ULL << 30;
    const auto plan = plan_against(spec, inv, {});
    const auto* disk = item(plan, ResourceKind::overlay_volume, "lab-lab1.qcow2");
    REQUIRE(disk);
    CHECK(disk->action == PlanAction::update);
    CHECK(disk->detail.find("capacity 10 GiB -> 20 GiB") != std::string::npos);
    CHECK_FALSE(disk->loses_data);
}

TEST_CASE("a disk grown by an earlier run whose file system step did not finish is still an update",
          "[provision][plan]") {
    const auto before = spec_from(k_lab);
    auto yaml = k_lab;
    yaml.replace(yaml.find("disk: 20GiB"), 11, "disk: 22GiB");
    const auto after = spec_from(yaml);
    auto inv = provisioned(before); // the record: 20 GiB
    inv.pools[0].volumes[1].capacity = 22ULL << 30;
    const auto plan = plan_against(after, inv, {});
    const auto* disk = item(plan, ResourceKind::overlay_volume, "lab-lab1.qcow2");
    REQUIRE(disk);
    CHECK(disk->action == PlanAction::update);
    CHECK(disk->detail.find("grown to 22 GiB already: its file system still to grow") !=
          std::string::npos);
    CHECK(item(plan, ResourceKind::domain, "lab-lab1")->action == PlanAction::keep);
}

TEST_CASE("new cpus or memory update the domain in place: a running VM restarts, a shut off one "
          "does not, its disk and seed are kept",
          "[provision][plan]") {
    const auto before = spec_from(k_lab);
    const auto after = spec_from(k_lab + "    cpus: 3\n    memory: 6GiB\n");
    auto inv = provisioned(before);
    auto plan = plan_against(after, inv, {});
    const auto* domain = item(plan, ResourceKind::domain, "lab-lab1");
    REQUIRE(domain);
    CHECK(domain->action == PlanAction::update);
    CHECK(domain->restarts);
    CHECK_FALSE(domain->loses_data);
    CHECK(domain->detail.find("2 -> 3 vCPU, 4 GiB -> 6 GiB memory: redefined, then restarted (it "
                              "is running); its disk is kept") != std::string::npos);
    CHECK(item(plan, ResourceKind::overlay_volume, "lab-lab1.qcow2")->action == PlanAction::keep);
    CHECK(item(plan, ResourceKind::seed_volume, "lab-lab1-seed.iso")->action == PlanAction::keep);
    REQUIRE(plan.disruptive().size() == 1);

    inv.domains[0].active = false;
    plan = plan_against(after, inv, {});
    domain = item(plan, ResourceKind::domain, "lab-lab1");
    CHECK(domain->action == PlanAction::update);
    CHECK_FALSE(domain->restarts);
    CHECK(domain->detail.find("in effect when it starts (shut off)") != std::string::npos);
    CHECK(plan.disruptive().empty());
}

TEST_CASE("a domain made before labctl recorded its sizes is compared by its definition's",
          "[provision][plan]") {
    const auto before = spec_from(k_lab);
    const auto after = spec_from(k_lab + "    cpus: 4\n");
    auto inv = provisioned(before);
    auto& d = inv.domains[0];
    d.labctl->cpus = 0;
    d.labctl->memory_bytes = 0;
    d.labctl->disk_bytes = 0;
    d.cpus = 2;                  // <vcpu>
    d.memory_bytes = 4ULL << 30; // <memory>; the disk's size is its volume's capacity
    CHECK(item(plan_against(after, inv, {}), ResourceKind::domain, "lab-lab1")->action ==
          PlanAction::update);
    d.memory_bytes = 3ULL << 30; // not what the hash was made with: anything may have changed
    CHECK(item(plan_against(after, inv, {}), ResourceKind::domain, "lab-lab1")->action ==
          PlanAction::replace);
}

TEST_CASE("a smaller disk than the VM has is refused (exit 2) before anything changes",
          "[provision][plan]") {
    const auto spec = spec_from(k_lab);
    auto inv = provisioned(spec);
    inv.pools[0].volumes[1].capacity = 40ULL << 30;
    try {
        plan_against(spec, inv, {});
        FAIL("no error");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::usage);
        CHECK(std::string(e.what()) ==
              "VM 'lab1': shrinking its disk (40 GiB -> 20 GiB) is refused: the data on it would "
              "be lost");
        CHECK(e.hint().find("labctl down, then labctl up") != std::string::npos);
    }
}

TEST_CASE("a domain without labctl metadata is refused by name", "[provision][plan]") {
    const auto spec = spec_from(k_lab);
    auto inv = provisioned(spec);
    inv.domains[0].labctl.reset();
    CHECK(error_of([&] { plan_against(spec, inv, {}); }) ==
          "domain 'lab-lab1' exists but was not created by labctl");
}

TEST_CASE("labctl domains of this project that left the spec are deleted with their objects",
          "[provision][plan]") {
    const auto spec = spec_from(k_lab);
    auto inv = provisioned(spec);
    inv.domains.push_back({"lab-old", false, LabctlMetadata{"lab", "old", "x"}});
    inv.domains.push_back({"other-vm", true, LabctlMetadata{"other", "vm", "x"}});
    inv.domains.push_back({"handmade", true, std::nullopt});
    inv.pools[0].volumes.push_back({"lab-old.qcow2", "", 1});
    inv.networks[0].dhcp_hosts.push_back({deterministic_mac("lab", "old"), "old", "10.66.77.11"});
    inv.networks[0].dhcp_hosts.push_back({"52:54:00:00:00:01", "printer", "10.66.77.50"});
    const auto plan = plan_against(spec, inv, {});
    CHECK(plan.count(PlanAction::remove) == 3);
    CHECK(item(plan, ResourceKind::domain, "lab-old")->action == PlanAction::remove);
    CHECK(item(plan, ResourceKind::overlay_volume, "lab-old.qcow2")->action == PlanAction::remove);
    CHECK(item(plan, ResourceKind::overlay_volume, "lab-old.qcow2")->loses_data);
    CHECK_FALSE(item(plan, ResourceKind::domain, "lab-old")->restarts); // shut off
    CHECK(item(plan, ResourceKind::dhcp_host, "old")->action == PlanAction::remove);
    CHECK_FALSE(item(plan, ResourceKind::domain, "other-vm"));
    CHECK_FALSE(item(plan, ResourceKind::domain, "handmade"));
    CHECK_FALSE(item(plan, ResourceKind::dhcp_host, "printer"));
}

TEST_CASE("a network with another range is a conflict", "[provision][plan]") {
    const auto spec = spec_from(k_lab);
    auto inv = provisioned(spec);
    inv.networks[0].subnets = {net("10.1.2.0/24")};
    CHECK(error_of([&] { plan_against(spec, inv, {}); }) ==
          "network 'lab-net' exists with 10.1.2.0/24, but network.cidr is 10.66.77.0/24");
}

TEST_CASE("a CIDR overlapping another network or a host route is refused", "[provision][plan]") {
    const auto spec = spec_from(k_lab);
    auto inv = provisioned(spec);
    NetworkFacts other;
    other.name = "other";
    other.subnets = {net("10.66.0.0/16")};
    inv.networks.push_back(other);
    CHECK(error_of([&] { plan_against(spec, inv, {}); }) ==
          "network.cidr 10.66.77.0/24 collides with libvirt network 'other' (10.66.0.0/16)");

    const std::vector<HostRoute> routes{{"eth1", net("10.66.77.128/25"), ""}};
    CHECK(error_of([&] { plan_against(spec, provisioned(spec), routes); }) ==
          "network.cidr 10.66.77.0/24 collides with host route 10.66.77.128/25 on eth1");
}

TEST_CASE("the default route and the lab network's own bridge route do not collide",
          "[provision][plan]") {
    const auto spec = spec_from(k_lab);
    const std::vector<HostRoute> routes{{"eth0", net("0.0.0.0/0"), "192.0.2.1"},
                                        {"virbr9", net("10.66.77.0/24"), ""},
                                        {"eth0", net("192.0.2.0/24"), ""}};
    CHECK(network_collisions(spec, provisioned(spec), routes).empty());
    // Without the network (not created yet), a route on that bridge name is someone else's.
    CHECK(network_collisions(spec, Inventory{}, routes).size() == 1);
}

TEST_CASE("a DHCP reservation with another ip is replaced", "[provision][plan]") {
    const auto spec = spec_from(k_lab);
    auto inv = provisioned(spec);
    inv.networks[0].dhcp_hosts[0].ip = "10.66.77.99";
    const auto plan = plan_against(spec, inv, {});
    CHECK(item(plan, ResourceKind::dhcp_host, "lab1")->action == PlanAction::replace);
}

TEST_CASE("an ip reserved for a foreign MAC is refused", "[provision][plan]") {
    const auto spec = spec_from(k_lab);
    auto inv = provisioned(spec);
    inv.networks[0].dhcp_hosts = {{"52:54:00:12:34:56", "nas", "10.66.77.10"}};
    CHECK(error_of([&] { plan_against(spec, inv, {}); }) ==
          "10.66.77.10 is already reserved for 52:54:00:12:34:56 (nas) in network 'lab-net'");
}

TEST_CASE("a missing pool without pool_path is refused online and assumed offline",
          "[provision][plan]") {
    const auto spec = spec_from(k_lab);
    CHECK(error_of([&] {
              plan_against(spec, Inventory{}, {});
          }).rfind("storage pool 'default' does not exist", 0) == 0);
    const auto plan = plan_against(spec, Inventory{}, {}, /*offline=*/true);
    CHECK(item(plan, ResourceKind::pool, "default")->action == PlanAction::keep);
    REQUIRE_FALSE(plan.warnings.empty());
}

TEST_CASE("a lab without an image warns that provisioning needs one", "[provision][plan]") {
    const auto spec = spec_from("version: 1\nproject: lab\nvms:\n  - name: a\n");
    const auto plan = plan_against(spec, Inventory{}, {}, true);
    CHECK_FALSE(item(plan, ResourceKind::base_volume, ""));
    bool warned = false;
    for (const auto& w : plan.warnings)
        warned = warned || w.find("names no image") != std::string::npos;
    CHECK(warned);
}
