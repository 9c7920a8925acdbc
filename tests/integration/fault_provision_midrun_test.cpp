// Fault cases of provision once the run has begun (issue #20), in process against libvirt's test
// driver with a connection held for the test (a test:///<file> state lives only as long as one):
// - an object the plan found, or that this run made, removed by someone else before the run uses
//   it (the test removes it through the same connection from the before_step hook, as a `virsh`
//   in another terminal would): exit 9 naming the object and what failed, with the rollback, not
//   a preflight refusal (3);
// - under --parallel, one VM failing for real (libvirt refuses its overlay) while the others are
//   in their waits (one polling for an IP that never comes, one blocked in `cloud-init status
//   --wait` on the sshd fixture): the others stop within a bound far below their deadlines, the
//   run is exit 9 naming the failed VM's volume, and the rollback removes everything the run
//   made; no remote command or child process is left.

#include <fmt/format.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include <labctl/config/loader.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/process.hpp>
#include <labctl/provision/inventory.hpp>
#include <labctl/provision/provision.hpp>
#include <labctl/provision/wait.hpp>

#include "../../src/provision/lv_objects.hpp"
#include "fault_support.hpp"
#include "sshd.hpp"
#include "support.hpp"
#include "test_user.hpp"

using namespace labctl;
using namespace labctl::provision;
using namespace std::chrono_literals;
using labctl::test::read_file;
using labctl::test::TempDir;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

using labctl::test::contains;

long ms(Clock::duration d) {
    return static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

/// A lab on a test:///<file> driver with only the pool "default"; `ssh_yaml` is its ssh: section
/// (empty: the lab's own key under .labctl), `vms_yaml` its vms: entries.
config::LabSpec load_lab(const TempDir& dir, const std::string& ssh_yaml,
                         const std::string& vms_yaml) {
    const auto uri =
        "test://" +
        dir.write("node.xml", read_file(test::fixture("libvirt/pool_only.xml"))).string();
    dir.write("images/base.qcow2", test::qcow2_header(2ULL << 30));
    if (ssh_yaml.empty()) {
        const auto key = dir.path() / ".labctl" / "id_ed25519";
        fs::create_directories(key.parent_path());
        REQUIRE(
            run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key.string()}).ok());
    }
    const std::string yaml = fmt::format(R"(version: 1
project: midrun
libvirt:
  uri: {}
  pool: default
  domain_type: qemu
network:
  name: midrun-net
  cidr: 10.66.83.0/24
image:
  path: images/base.qcow2
{}vms:
{})",
                                         uri, ssh_yaml, vms_yaml);
    config::LoadOptions lo;
    lo.path = dir.write("lab.yaml", yaml).string();
    const auto loaded = config::load_lab(lo);
    std::string diagnostics;
    for (const auto& d : loaded.diagnostics)
        diagnostics += config::format(d) + "\n";
    INFO(diagnostics);
    REQUIRE(loaded.ok());
    return *loaded.spec;
}

std::set<std::string> names(const Inventory& inv) {
    std::set<std::string> out;
    for (const auto& n : inv.networks)
        out.insert("network:" + n.name);
    for (const auto& p : inv.pools)
        for (const auto& v : p.volumes)
            out.insert("volume:" + v.name);
    for (const auto& d : inv.domains)
        out.insert("domain:" + d.name);
    return out;
}

struct Failure {
    int code = 0;
    std::string message;
    std::string hint;
    Clock::duration took{};
};

Failure provision_failure(const config::LabSpec& spec, LibvirtSession& session,
                          const ProvisionOptions& options) {
    Failure f;
    const auto t0 = Clock::now();
    try {
        provision::provision(spec, session, options);
        FAIL("provision succeeded");
    } catch (const Error& e) {
        f.code = to_int(e.code());
        f.message = e.what();
        f.hint = e.hint();
    }
    f.took = Clock::now() - t0;
    return f;
}

/// What `virsh net-destroy NAME; virsh net-undefine NAME` does, over the test's connection.
void remove_network(LibvirtSession& session, const std::string& name) {
    libvirt::NetworkHandle n = session.impl().conn.find_network(name);
    REQUIRE(n);
    if (virNetworkIsActive(n.get()) == 1)
        REQUIRE(virNetworkDestroy(n.get()) == 0);
    REQUIRE(virNetworkUndefine(n.get()) == 0);
}

/// What `virsh vol-delete NAME --pool POOL` does.
void remove_volume(LibvirtSession& session, const std::string& pool, const std::string& name) {
    libvirt::StoragePoolHandle p = session.impl().conn.find_pool(pool);
    REQUIRE(p);
    libvirt::StorageVolHandle v = libvirt::Connection::find_volume(p.get(), name);
    REQUIRE(v);
    REQUIRE(virStorageVolDelete(v.get(), 0) == 0);
}

const char* const k_two_vms = "  - name: vm1\n    memory: 1GiB\n    disk: 20GiB\n"
                              "  - name: vm2\n    memory: 1GiB\n    disk: 20GiB\n";

} // namespace

TEST_CASE("the lab's network removed by someone else while the run adds a DHCP host is exit 9 "
          "naming the network, with what the run made rolled back",
          "[fault][provision]") {
    TempDir dir;
    const auto spec = load_lab(dir, {}, k_two_vms);
    auto session = LibvirtSession::open(spec.libvirt.uri);
    const auto before = names(session.inventory());
    ProvisionOptions po;
    po.wait = false;
    // The run made the network, the pool's base volume and all of vm1 before vm2's DHCP host.
    po.before_step = [&](std::string_view step) {
        if (step == "dhcp-host:vm2")
            remove_network(session, "midrun-net");
    };
    const auto f = provision_failure(spec, session, po);
    INFO(f.message << "\nhint: " << f.hint);
    CHECK(f.code == 9);
    CHECK(contains(f.message, "provision: reading the XML of network 'midrun-net' failed: "));
    CHECK(contains(f.hint, "rolled back what this run made: "));
    CHECK(contains(f.hint, "domain 'midrun-vm1'"));
    CHECK_FALSE(contains(f.hint, "left")); // the network took vm1's DHCP host along
    CHECK(f.took < 5s);
    CHECK(names(session.inventory()) == before);
    CHECK(test::children_of_self().empty());
}

TEST_CASE("an object the plan found, removed by someone else before the run uses it, is exit 9 "
          "saying it disappeared, not a preflight refusal",
          "[fault][provision]") {
    for (const std::string step : {"network", "base-volume"}) {
        // Each case on a lab of its own that a first run made: the second run keeps it all.
        TempDir dir;
        const auto spec = load_lab(dir, {}, k_two_vms);
        auto session = LibvirtSession::open(spec.libvirt.uri);
        ProvisionOptions po;
        po.wait = false;
        REQUIRE_NOTHROW(provision::provision(spec, session, po));
        const bool network = step == "network";
        const std::string object = network ? "network 'midrun-net'" : "volume 'base.qcow2'";
        INFO("removed at step " << step << ": " << object);
        po.before_step = [&](std::string_view s) {
            if (s != step)
                return;
            if (network)
                remove_network(session, "midrun-net");
            else
                remove_volume(session, "default", "base.qcow2");
        };
        auto before = names(session.inventory());
        const auto f = provision_failure(spec, session, po);
        INFO(f.message << "\nhint: " << f.hint);
        CHECK(f.code == 9);
        CHECK(contains(f.message, fmt::format("provision: {} disappeared after the plan was made "
                                              "(removed outside this run of labctl at {})",
                                              object, spec.libvirt.uri)));
        CHECK(contains(f.hint, "this run had made nothing"));
        CHECK(f.took < 5s);
        // Nothing else changed: only the removed object is gone.
        before.erase(network ? "network:midrun-net" : "volume:base.qcow2");
        CHECK(names(session.inventory()) == before);
    }
    CHECK(test::children_of_self().empty());
}

TEST_CASE("under --parallel a VM that fails while the others wait (ip, blocking cloud-init) stops "
          "them within 5 s, far below their deadlines, and the rollback removes everything the "
          "run made",
          "[fault][provision]") {
    const auto marker = test::unique_marker("sibling");
    // A cloud-init on the fixture's PATH that blocks like `cloud-init status --wait` on a slow
    // boot, named after the marker so the test sees it run and end.
    TempDir fakes;
    fs::permissions(fakes.path(), fs::perms::owner_all | fs::perms::group_read |
                                      fs::perms::group_exec | fs::perms::others_read |
                                      fs::perms::others_exec);
    const auto sleeper = fakes.path() / (marker + "-sleep");
    fs::copy_file("/bin/sleep", sleeper);
    fs::permissions(sleeper, fs::perms::all & ~fs::perms::group_write & ~fs::perms::others_write);
    fs::permissions(
        fakes.write("cloud-init", fmt::format("#!/bin/sh\nexec {} 600\n", sleeper.string())),
        fs::perms::all & ~fs::perms::group_write & ~fs::perms::others_write);
    test::TestUser user; // labctl refuses ssh.user root
    test::SshServer sshd(
        {.extra_config =
             fmt::format("SetEnv PATH={}:/usr/local/bin:/usr/bin:/bin\n", fakes.path().string())});
    TempDir dir;
    const auto known = dir.write("known_hosts", read_file(sshd.known_hosts()));
    const auto spec = load_lab(
        dir,
        fmt::format("ssh:\n  user: {}\n  port: {}\n  private_key: {}\n  known_hosts: {}\n",
                    user.name(), sshd.port(), sshd.client_key().string(), known.string()),
        // vm3's 200 GiB overlay does not fit the test driver's 100 GiB pool: libvirt refuses it.
        "  - name: vm1\n    memory: 1GiB\n    disk: 20GiB\n"
        "  - name: vm2\n    memory: 1GiB\n    disk: 20GiB\n"
        "  - name: vm3\n    memory: 1GiB\n    disk: 200GiB\n");
    auto session = LibvirtSession::open(spec.libvirt.uri);
    const auto before = names(session.inventory());

    // vm1 never gets an address (its ip wait polls); vm2 gets the fixture's and blocks in
    // cloud-init. Only the lease counts: the probe reports no reservation.
    struct Guest final : GuestProbe {
        bool leases = false;
        bool running() override { return true; }
        std::optional<std::string> reserved_ip() override { return std::nullopt; }
        std::optional<std::string> lease_ip() override {
            return leases ? std::optional<std::string>("127.0.0.1") : std::nullopt;
        }
        std::optional<std::string> agent_ip() override { return std::nullopt; }
        std::vector<std::string> console_tail() override { return {}; }
    };
    std::atomic<int> waiting{0};
    std::atomic<bool> others_waited{false};
    Clock::time_point failed_at{};
    ProvisionOptions po;
    po.parallel = 3;
    po.deadlines.ip = 30s;
    po.deadlines.ssh = 30s;
    po.deadlines.cloud_init = 60s;
    po.deadlines.poll = 100ms;
    po.probe_factory = [&](const config::VmSpec& vm) {
        auto g = std::make_unique<Guest>();
        g->leases = vm.name == "vm2";
        ++waiting;
        return g;
    };
    // vm3 goes on to its overlay (which libvirt refuses) only once vm1 polls for its address
    // and vm2's cloud-init runs on the fixture: nothing is injected, the hook only waits.
    po.before_step = [&](std::string_view step) {
        if (step != "overlay:vm3")
            return;
        others_waited = test::wait_until(
            [&] { return waiting == 2 && !test::processes_matching(marker).empty(); }, 30s);
        std::this_thread::sleep_for(300ms); // both are inside their waits
        failed_at = Clock::now();
    };
    const auto f = provision_failure(spec, session, po);
    const auto ended = Clock::now();
    INFO(f.message << "\nhint: " << f.hint << "\nended " << ms(ended - failed_at)
                   << " ms after vm3 failed; the run took " << ms(f.took) << " ms");
    REQUIRE(others_waited);
    CHECK(f.code == 9);
    CHECK(contains(f.message, "provision: creating volume 'midrun-vm3.qcow2' in pool 'default' "
                              "failed: "));
    CHECK(contains(f.hint, "rolled back what this run made: "));
    CHECK(contains(f.hint, "domain 'midrun-vm1'"));
    CHECK(contains(f.hint, "domain 'midrun-vm2'"));
    CHECK(ended - failed_at < 5s); // the deadlines were 30 s (ip) and 60 s (cloud-init)
    CHECK(names(session.inventory()) == before);
    const bool remote_gone = test::wait_gone(marker, 3s);
    if (!remote_gone)
        test::kill_matching(marker);
    CHECK(remote_gone); // vm2's blocking cloud-init was ended on the fixture
    std::vector<pid_t> children;
    for (const pid_t p : test::children_of_self())
        if (p != test::pid_of_listener(sshd))
            children.push_back(p);
    CHECK(children.empty());
}
