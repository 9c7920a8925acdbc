// A VM updated in place on a real libvirtd + QEMU, the paths the NAT e2e does not take: the
// disk grown while the VM is shut off (virStorageVolResize), a disk holding a snapshot grown (a
// qcow2 v3 overlay), and a VM that ignores the shutdown
// request (SeaBIOS with no OS: nothing handles ACPI) powered off when the bound is reached, then
// started with its new cpus. The outer test runs resize_libvirtd_test.sh inside
// `unshare --net --mount --fork` (a private libvirtd; the system one is never touched), which
// runs this binary again in its inner mode against that libvirtd, with labctl's library. The
// running-VM grow (virDomainBlockResize) is covered here too, and with a real guest (file system
// grown, data kept, a clean shutdown) in tests/e2e/nat.sh.

#include <fmt/format.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>

#include <labctl/config/loader.hpp>
#include <labctl/core/process.hpp>
#include <labctl/provision/naming.hpp>
#include <labctl/provision/provision.hpp>
#include <labctl/provision/snapshot.hpp>

#include "../../src/provision/lv_objects.hpp"
#include "../../src/provision/provision_parts.hpp"
#include "../../src/provision/vm_update.hpp"
#include "../../src/provision/xml.hpp"
#include "fault_support.hpp"
#include "skip.hpp"
#include "support.hpp"

using namespace labctl;
using namespace labctl::provision;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

bool has_change(const std::vector<Change>& changes, const std::string& action,
                const std::string& kind, const std::string& name, const std::string& detail = {}) {
    return std::any_of(changes.begin(), changes.end(), [&](const Change& c) {
        return c.action == action && c.kind == kind && c.name == name &&
               c.detail.find(detail) != std::string::npos;
    });
}

/// The overlay's virtual size as QEMU's own tool reads the file (-U: QEMU may hold it open).
std::uint64_t virtual_size(const fs::path& file) {
    const auto r = run_process({"qemu-img", "info", "-U", "--output=json", file.string()});
    REQUIRE(r.ok());
    const auto at = r.out.find("\"virtual-size\":");
    REQUIRE(at != std::string::npos);
    return std::stoull(r.out.substr(at + 15));
}

std::string domain_xml_of(LibvirtSession& s) {
    const auto d = s.impl().conn.find_domain("rsz-vm1");
    REQUIRE(d);
    return libvirt::take_string(virDomainGetXMLDesc(d.get(), 0));
}

bool active(LibvirtSession& s) {
    const auto d = s.impl().conn.find_domain("rsz-vm1");
    return d && virDomainIsActive(d.get()) == 1;
}

} // namespace

TEST_CASE("on libvirtd + QEMU: a running VM's disk grows through QEMU, a VM that ignores the "
          "shutdown is powered off at the bound and starts with its new cpus, a shut off VM's "
          "disk grows through the pool",
          "[resize][libvirtd]") {
    if (::geteuid() != 0)
        test::skip("a private libvirtd in a mount namespace needs root");
    for (const char* p :
         {"unshare", "libvirtd", "virtlogd", "virsh", "qemu-img", "qemu-system-x86_64"})
        test::require_program(p);
    test::TempDir dir;
    const auto work = dir.path() / "w";
    fs::create_directories(work / ".labctl");
    // QEMU runs as libvirt-qemu: it must reach the pool under the (0700) temporary directory.
    fs::permissions(dir.path(),
                    fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    REQUIRE(run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                         (work / ".labctl" / "id_ed25519").string()})
                .ok());
    const auto script = test::source_dir() / "tests" / "integration" / "resize_libvirtd_test.sh";
    ProcessOptions po;
    po.timeout = 300s;
    const auto r = run_process({"unshare", "--net", "--mount", "--fork", "bash", script.string(),
                                work.string(), fs::read_symlink("/proc/self/exe").string()},
                               po);
    INFO("inner run:\n" << r.out << r.err);
    REQUIRE_FALSE(r.timed_out);
    CHECK(r.exit_code == 0);
    CHECK(test::contains(r.out, "All tests passed"));
    CHECK(test::processes_matching(work.string()).empty());
}

// Inner mode, run by resize_libvirtd_test.sh in the namespace (hidden: never run on its own).
TEST_CASE("resize inner: against the namespace's libvirtd", "[.][resize-inner]") {
    const char* w = std::getenv("LABCTL_RESIZE_WORK");
    REQUIRE(w != nullptr);
    const fs::path work = w;
    const auto file = work / "lab.yaml";
    {
        const std::string text = R"(version: 1
project: rsz
libvirt: {uri: "qemu:///system", pool: rszpool, domain_type: qemu}
network:
  mode: user
  forwards:
    - {guest: 22, host: 2298}
image: {path: images/base.qcow2}
vms:
  - {name: vm1, cpus: 1, memory: 256MiB, disk: 2GiB}
)";
        std::FILE* f = std::fopen(file.c_str(), "w");
        REQUIRE(f != nullptr);
        REQUIRE(std::fwrite(text.data(), 1, text.size(), f) == text.size());
        REQUIRE(std::fclose(f) == 0);
    }
    config::LoadOptions lo;
    lo.path = file.string();
    const auto loaded = config::load_lab(lo);
    REQUIRE(loaded.ok());
    auto spec = *loaded.spec;
    auto session = LibvirtSession::open(spec.libvirt.uri);
    ProvisionOptions o;
    o.wait = false; // no OS in the guest: nothing to wait for
    o.deadlines.shutdown = 3s;
    provision::provision(spec, session, o);
    REQUIRE(active(session));
    const auto overlay = work / "pool" / "rsz-vm1.qcow2";
    CHECK(virtual_size(overlay) == 2ULL << 30);

    SECTION("grown while it runs and holds a snapshot, then new cpus: the shutdown is ignored, it "
            "is powered off") {
        // QEMU grows a qcow2 v3 image with internal snapshots (v2, libvirt's default, it cannot).
        const auto info = run_process({"qemu-img", "info", "-U", overlay.string()});
        CHECK(test::contains(info.out, "compat: 1.1"));
        snapshot_save(spec, "before-grow", {&session});
        spec.vms[0].disk_bytes = 3ULL << 30;
        auto r = provision::provision(spec, session, o);
        CHECK(has_change(r.changes, "update", "volume", "rsz-vm1.qcow2", "2 GiB -> 3 GiB"));
        CHECK(virtual_size(overlay) == 3ULL << 30);
        CHECK(active(session)); // a grow restarts nothing
        {
            // What provision writes once the guest's file system grew (not waited for here).
            const auto d = session.impl().conn.find_domain("rsz-vm1");
            set_domain_metadata(session.impl().conn, d.get(),
                                domain_metadata_xml(spec, spec.vms[0], false));
            const auto meta = parse_labctl_metadata(domain_xml_of(session));
            REQUIRE(meta);
            CHECK(meta->disk_bytes == 3ULL << 30);
            CHECK(meta->spec_hash == vm_spec_hash(spec, spec.vms[0]));
        }
        CHECK(std::find(r.notes.begin(), r.notes.end(),
                        "VM 'vm1': its disk grew; its file system grows when provision waits "
                        "for the VM") != r.notes.end());

        spec.vms[0].cpus = 2;
        const auto t0 = std::chrono::steady_clock::now();
        r = provision::provision(spec, session, o);
        const auto took = std::chrono::steady_clock::now() - t0;
        CHECK(has_change(r.changes, "update", "domain", "rsz-vm1",
                         "1 -> 2 vCPU: redefined, powered off (no clean shutdown within 3 s)"));
        CHECK(has_change(r.changes, "start", "domain", "rsz-vm1"));
        CHECK(took >= 3s);
        CHECK(took < 30s);
        CHECK(active(session));
        CHECK(test::contains(domain_xml_of(session), "<vcpu placement='static'>2</vcpu>"));
    }

    SECTION("grown while it is shut off: through the pool, then started") {
        {
            const auto d = session.impl().conn.find_domain("rsz-vm1");
            REQUIRE(virDomainDestroy(d.get()) == 0);
        }
        spec.vms[0].disk_bytes = 4ULL << 30;
        const auto r = provision::provision(spec, session, o);
        CHECK(has_change(r.changes, "update", "volume", "rsz-vm1.qcow2", "2 GiB -> 4 GiB"));
        CHECK(has_change(r.changes, "start", "domain", "rsz-vm1"));
        CHECK(virtual_size(overlay) == 4ULL << 30);
        CHECK(active(session));
    }
    provision::down(spec, session, {.purge = true});
    CHECK_FALSE(fs::exists(overlay));
}
