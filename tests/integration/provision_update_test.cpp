// A VM updated in place (new cpus, memory or a larger disk) and the question provision asks before
// a change that restarts a running VM or loses data, on libvirt's test driver (one session per
// test: the driver keeps its state per connection). The test driver resizes nothing
// (virDomainBlockResize and virStorageVolResize are unsupported there): its refusal is the fault
// case here, and the grow itself runs on real libvirtd + QEMU in tests/e2e/nat.sh.

#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>

#include <labctl/config/loader.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/process.hpp>
#include <labctl/provision/naming.hpp>
#include <labctl/provision/plan.hpp>
#include <labctl/provision/provision.hpp>
#include <labctl/provision/snapshot.hpp>

#include "../../src/provision/lv_objects.hpp"
#include "../../src/provision/provision_parts.hpp"
#include "../../src/provision/vm_update.hpp"
#include "../../src/provision/xml.hpp"
#include "support.hpp"
#include "test_lab.hpp"

using namespace labctl;
using namespace labctl::provision;

namespace {

/// One VM (1 vCPU, 1 GiB, 4 GiB disk) on libvirt's test driver, provisioned on one session.
struct UpdateLab {
    UpdateLab() {
        spec = test::write_test_lab(dir, R"(version: 1
project: upd
libvirt: {uri: "test:///default", pool: default-pool, domain_type: qemu}
network: {name: upd-net, cidr: 10.66.79.0/24}
image: {path: images/base.qcow2}
vms:
  - {name: web, cpus: 1, memory: 1GiB, disk: 4GiB}
)");
        session.emplace(LibvirtSession::open(spec.libvirt.uri));
        provision::provision(spec, *session);
    }

    /// The domain's persistent definition, parsed.
    xml::Element domain() const {
        const auto& conn = session->impl().conn;
        const auto d = conn.find_domain("upd-web");
        REQUIRE(d);
        return xml::parse(libvirt::take_string(virDomainGetXMLDesc(d.get(), 0)));
    }
    std::uint64_t disk_capacity() const {
        const auto inv = session->inventory();
        const auto* v = inv.find_pool("default-pool")->find_volume("upd-web.qcow2");
        REQUIRE(v != nullptr);
        return v->capacity;
    }
    Plan plan() const { return plan_against(spec, session->inventory(), {}); }

    test::TempDir dir;
    config::LabSpec spec;
    std::optional<LibvirtSession> session;
};

bool has_change(const std::vector<Change>& changes, const std::string& action,
                const std::string& kind, const std::string& name) {
    return std::any_of(changes.begin(), changes.end(), [&](const Change& c) {
        return c.action == action && c.kind == kind && c.name == name;
    });
}

/// Records the plans it is asked about, and refuses when told to.
struct Approver {
    std::vector<Plan> asked;
    bool refuse = false;
    /// ProvisionOptions whose approve is this.
    ProvisionOptions options() {
        ProvisionOptions o;
        o.approve = [this](const Plan& p) {
            asked.push_back(p);
            if (refuse)
                throw usage_error("refused by the test");
        };
        return o;
    }
};

} // namespace

TEST_CASE("new cpus and memory redefine the running domain under its UUID and restart it after "
          "approval: its disk, seed and snapshots stay",
          "[provision][update]") {
    UpdateLab lab;
    const std::string uuid = lab.domain().child_text("uuid");
    REQUIRE_FALSE(uuid.empty());
    snapshot_save(lab.spec, "before", {&*lab.session});
    lab.spec.vms[0].cpus = 3;
    lab.spec.vms[0].memory_bytes = 2ULL << 30;

    Approver approver;
    const ProvisionOptions o = approver.options();
    const auto r = provision::provision(lab.spec, *lab.session, o);
    REQUIRE(approver.asked.size() == 1);
    const auto disruptive = approver.asked[0].disruptive();
    REQUIRE(disruptive.size() == 1);
    CHECK(disruptive[0]->name == "upd-web");
    CHECK(disruptive[0]->restarts);
    CHECK(test::contains(disruptive[0]->detail, "1 -> 3 vCPU, 1 GiB -> 2 GiB memory"));

    CHECK(has_change(r.changes, "update", "domain", "upd-web"));
    CHECK(has_change(r.changes, "start", "domain", "upd-web"));
    CHECK_FALSE(has_change(r.changes, "create", "volume", "upd-web.qcow2"));
    CHECK_FALSE(has_change(r.changes, "create", "volume", "upd-web-seed.iso"));
    CHECK_FALSE(has_change(r.changes, "delete", "domain", "upd-web"));
    const auto dom = lab.domain();
    CHECK(dom.child_text("uuid") == uuid);
    CHECK(dom.child_text("vcpu") == "3");
    CHECK(dom.child_text("memory") == std::to_string((2ULL << 30) >> 10)); // KiB
    const auto meta = parse_labctl_metadata(libvirt::take_string(
        virDomainGetXMLDesc(lab.session->impl().conn.find_domain("upd-web").get(), 0)));
    REQUIRE(meta);
    CHECK(meta->cpus == 3);
    CHECK(meta->spec_hash == vm_spec_hash(lab.spec, lab.spec.vms[0]));
    CHECK(snapshot_list(lab.spec, {&*lab.session}).size() == 1);
    CHECK_FALSE(lab.plan().has_changes());
    CHECK(status(lab.spec, *lab.session)[0].state == "running");
}

TEST_CASE("labctl's metadata rewritten through virDomainSetMetadata reads back with the new sizes",
          "[provision][update]") {
    UpdateLab lab;
    auto grown = lab.spec.vms[0];
    grown.disk_bytes = 6ULL << 30;
    const auto& conn = lab.session->impl().conn;
    const auto d = conn.find_domain("upd-web");
    set_domain_metadata(conn, d.get(), domain_metadata_xml(lab.spec, grown, false));
    const auto meta = parse_labctl_metadata(libvirt::take_string(virDomainGetXMLDesc(d.get(), 0)));
    REQUIRE(meta);
    CHECK(meta->project == "upd");
    CHECK(meta->disk_bytes == 6ULL << 30);
    CHECK(meta->spec_hash == vm_spec_hash(lab.spec, grown));
    // The persistent definition has it too (what the next run reads).
    const auto inactive = parse_labctl_metadata(
        libvirt::take_string(virDomainGetXMLDesc(d.get(), VIR_DOMAIN_XML_INACTIVE)));
    REQUIRE(inactive);
    CHECK(inactive->disk_bytes == 6ULL << 30);
}

TEST_CASE("a refused approval changes nothing: the domain keeps its cpus and keeps running",
          "[provision][update]") {
    UpdateLab lab;
    lab.spec.vms[0].cpus = 2;
    CHECK(status(lab.spec, *lab.session)[0].spec == "to update");
    Approver approver;
    approver.refuse = true;
    const ProvisionOptions o = approver.options();
    std::string message;
    CHECK(test::exit_code_of([&] { provision::provision(lab.spec, *lab.session, o); }, &message) ==
          2);
    CHECK(message == "refused by the test");
    CHECK(lab.domain().child_text("vcpu") == "1");
    CHECK(status(lab.spec, *lab.session)[0].state == "running");
    CHECK(lab.plan().count(PlanAction::update) == 1);
}

TEST_CASE("a run that fails after the domain was redefined puts its earlier definition back and "
          "starts it again",
          "[provision][update]") {
    UpdateLab lab;
    lab.spec.vms[0].cpus = 2;
    ProvisionOptions o;
    o.before_step = [](std::string_view step) {
        if (step == "start:web")
            throw Error(ExitCode::provision, "injected before the start");
    };
    CHECK(test::exit_code_of([&] { provision::provision(lab.spec, *lab.session, o); }) == 9);
    CHECK(lab.domain().child_text("vcpu") == "1");
    CHECK(status(lab.spec, *lab.session)[0].state == "running");
    CHECK(lab.plan().count(PlanAction::update) == 1); // the next run updates it again
}

TEST_CASE("a shut off VM gets its new memory without a question, and is started as always",
          "[provision][update]") {
    UpdateLab lab;
    {
        const auto d = lab.session->impl().conn.find_domain("upd-web");
        REQUIRE(virDomainDestroy(d.get()) == 0);
    }
    lab.spec.vms[0].memory_bytes = 3ULL << 30;
    Approver approver;
    const ProvisionOptions o = approver.options();
    const auto r = provision::provision(lab.spec, *lab.session, o);
    CHECK(approver.asked.empty());
    CHECK(has_change(r.changes, "update", "domain", "upd-web"));
    CHECK(has_change(r.changes, "start", "domain", "upd-web"));
    CHECK(lab.domain().child_text("memory") == std::to_string((3ULL << 30) >> 10));
    CHECK_FALSE(lab.plan().has_changes());
}

TEST_CASE("a larger disk the driver cannot resize fails with exit 9 naming the volume: the disk "
          "and the domain's record stay, so the next run grows it again",
          "[provision][update]") {
    UpdateLab lab;
    lab.spec.vms[0].disk_bytes = 6ULL << 30;
    Approver approver;
    const ProvisionOptions o = approver.options();
    std::string message;
    CHECK(test::exit_code_of([&] { provision::provision(lab.spec, *lab.session, o); }, &message) ==
          9);
    CHECK(approver.asked.empty()); // growing restarts nothing and loses nothing
    CHECK(test::contains(message, "growing volume 'upd-web.qcow2' to 6 GiB (virDomainBlockResize, "
                                  "the VM running) failed"));
    CHECK(test::contains(message, "not supported"));
    CHECK(lab.disk_capacity() == 4ULL << 30);
    const auto plan = lab.plan();
    CHECK(plan.count(PlanAction::update) == 1);
    CHECK(status(lab.spec, *lab.session)[0].state == "running");
}

TEST_CASE("a change other than sizes replaces the VM with a new disk, after an approval that "
          "says its data is lost",
          "[provision][update]") {
    UpdateLab lab;
    lab.spec.ssh.port = 2222;
    Approver approver;
    const ProvisionOptions o = approver.options();
    const auto r = provision::provision(lab.spec, *lab.session, o);
    REQUIRE(approver.asked.size() == 1);
    const auto disruptive = approver.asked[0].disruptive();
    const auto lost = std::find_if(disruptive.begin(), disruptive.end(),
                                   [](const PlanItem* i) { return i->loses_data; });
    REQUIRE(lost != disruptive.end());
    CHECK((*lost)->name == "upd-web.qcow2");
    CHECK((*lost)->action == PlanAction::replace);
    CHECK(has_change(r.changes, "delete", "domain", "upd-web"));
    CHECK(has_change(r.changes, "create", "volume", "upd-web.qcow2"));
    CHECK(has_change(r.changes, "create", "domain", "upd-web"));
    CHECK_FALSE(lab.plan().has_changes());
}

TEST_CASE("a VM removed from lab.yaml is asked about (its disk's data is lost), then deleted with "
          "its snapshot",
          "[provision][update]") {
    UpdateLab lab;
    auto two = lab.spec;
    two.vms.push_back(two.vms[0]);
    two.vms[1].name = "db";
    two.vms[1].ip = "10.66.79.11";
    provision::provision(two, *lab.session);
    snapshot_save(two, "both", {&*lab.session});
    Approver approver;
    approver.refuse = true;
    const ProvisionOptions o = approver.options();
    CHECK(test::exit_code_of([&] { provision::provision(lab.spec, *lab.session, o); }) == 2);
    REQUIRE(approver.asked.size() == 1);
    bool disk_lost = false;
    for (const auto* i : approver.asked[0].disruptive())
        disk_lost = disk_lost || (i->name == "upd-db.qcow2" && i->loses_data);
    CHECK(disk_lost);
    CHECK(lab.session->inventory().find_domain("upd-db") != nullptr);

    // Approved: the VM goes, and with it its snapshot, which the run names.
    approver.refuse = false;
    const auto r = provision::provision(lab.spec, *lab.session, approver.options());
    CHECK(has_change(r.changes, "delete", "domain", "upd-db"));
    CHECK(has_change(r.changes, "delete", "volume", "upd-db.qcow2"));
    CHECK(has_change(r.changes, "delete", "snapshot", "both"));
    CHECK(lab.session->inventory().find_domain("upd-db") == nullptr);
}
