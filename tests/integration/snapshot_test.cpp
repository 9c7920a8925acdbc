// Lab snapshots through the libvirt C API on libvirt's test driver (its snapshots are kept in
// memory, per connection: the whole flow runs on one session).

#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>

#include <labctl/config/loader.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/process.hpp>
#include <labctl/provision/naming.hpp>
#include <labctl/provision/provision.hpp>
#include <labctl/provision/snapshot.hpp>

#include "support.hpp"
#include "test_lab.hpp"

using namespace labctl;
using namespace labctl::provision;

namespace {

/// A lab of two VMs on libvirt's test driver, provisioned on one session.
struct SnapshotLab {
    SnapshotLab() {
        spec = test::write_test_lab(dir, R"(version: 1
project: snap
libvirt: {uri: "test:///default", pool: default-pool, domain_type: qemu}
network: {name: snap-net, cidr: 10.66.78.0/24}
image: {path: images/base.qcow2}
vms:
  - {name: web, memory: 1GiB, disk: 4GiB}
  - {name: db, memory: 1GiB, disk: 4GiB}
)");
        session.emplace(LibvirtSession::open(spec.libvirt.uri));
        provision::provision(spec, *session);
    }
    HostSessions sessions() { return {&*session}; }

    test::TempDir dir;
    config::LabSpec spec;
    std::optional<LibvirtSession> session;
};

} // namespace

TEST_CASE("snapshot save makes one labctl snapshot per VM, list shows it, restore reverts every "
          "VM and delete removes it",
          "[snapshot]") {
    SnapshotLab lab;
    const auto saved = snapshot_save(lab.spec, "before-upgrade", lab.sessions());
    REQUIRE(saved.size() == 2);
    CHECK(saved[0].action == "create");
    CHECK(saved[0].kind == "snapshot");
    CHECK(test::contains(saved[0].detail, "of VM 'web' (disk+memory"));
    CHECK(test::contains(saved[1].detail, "of VM 'db'"));

    auto list = snapshot_list(lab.spec, lab.sessions());
    REQUIRE(list.size() == 1);
    CHECK(list[0].name == "before-upgrade");
    CHECK(list[0].vms == std::vector<std::string>{"web", "db"});
    CHECK(list[0].missing.empty());
    CHECK(list[0].state == "disk+memory");
    CHECK(list[0].created.size() == 20); // 2026-12-07T14:00:00Z

    // The VMs were resumed after the snapshot.
    const auto status_after = status(lab.spec, *lab.session);
    for (const auto& v : status_after)
        CHECK(v.state == "running");

    const auto reverted = snapshot_restore(lab.spec, "before-upgrade", lab.sessions());
    REQUIRE(reverted.size() == 2);
    CHECK(reverted[0].action == "revert");
    CHECK(reverted[0].name == domain_name("snap", "web"));

    // A second save under the same name is refused before anything is made.
    std::string message;
    CHECK(test::exit_code_of([&] { snapshot_save(lab.spec, "before-upgrade", lab.sessions()); },
                             &message) == 2);
    CHECK(test::contains(message, "already has a snapshot 'before-upgrade'"));

    const auto deleted = snapshot_delete(lab.spec, "before-upgrade", lab.sessions());
    CHECK(deleted.size() == 2);
    CHECK(snapshot_list(lab.spec, lab.sessions()).empty());
    CHECK(test::exit_code_of(
              [&] { snapshot_delete(lab.spec, "before-upgrade", lab.sessions()); }) == 2);
}

TEST_CASE("restore is all or none: a VM without the snapshot means no VM is reverted",
          "[snapshot]") {
    SnapshotLab lab;
    snapshot_save(lab.spec, "one", lab.sessions());
    snapshot_save(lab.spec, "two", lab.sessions());
    // "two" disappears from db only (deleted behind labctl's back).
    auto db_only = lab.spec;
    db_only.vms.erase(db_only.vms.begin());
    snapshot_delete(db_only, "two", lab.sessions());
    const auto list = snapshot_list(lab.spec, lab.sessions());
    REQUIRE(list.size() == 2);
    CHECK(list[1].name == "two");
    CHECK(list[1].missing == std::vector<std::string>{"db"});
    std::string message;
    CHECK(test::exit_code_of([&] { snapshot_restore(lab.spec, "two", lab.sessions()); },
                             &message) == 2);
    CHECK(test::contains(message, "no labctl snapshot 'two' on db: nothing was reverted"));
}

TEST_CASE("snapshot names are checked, and a lab that is not provisioned is refused",
          "[snapshot]") {
    SnapshotLab lab;
    for (const char* bad : {"", "-x", ".hidden", "a/b", "with space"})
        CHECK(test::exit_code_of([&] { check_snapshot_name(bad); }) == 2);
    check_snapshot_name("before-upgrade_2.0");
    snapshot_save(lab.spec, "kept", lab.sessions());
    const auto removed = down(lab.spec, *lab.session);
    // down says that each VM's snapshot went with its domain.
    CHECK(std::count_if(removed.begin(), removed.end(), [](const Change& c) {
              return c.action == "delete" && c.kind == "snapshot" && c.name == "kept";
          }) == 2);
    std::string message;
    CHECK(test::exit_code_of([&] { snapshot_save(lab.spec, "s", lab.sessions()); }, &message) == 2);
    CHECK(test::contains(message, "not provisioned: web, db"));
}
