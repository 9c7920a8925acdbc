// Fault cases of issue #20, "Ctrl-C in every stage", for the stages on this machine's side:
// provision, down and image build. Ctrl-C is SIGINT to labctl's process group, as a terminal
// sends it (see tests/support/interrupt_support.hpp for why that group and not the process).
// - provision, in process on libvirt's test driver: 4 VMs under --parallel 4 with simulated
//   guests, two in the ip wait, two blocked in `cloud-init status --wait` on the sshd fixture.
//   (The binary on the test driver skips the guest waits, and a test:/// state dies with the
//   process that opened it, so the binary cases below use a real libvirtd.)
// - provision and down through the binary, against a private libvirtd in a network and mount
//   namespace of the test's own (fault_interrupt_libvirtd.sh; the system libvirtd is never
//   touched): Ctrl-C while the base image streams, while 4 real QEMU guests are waited for, and
//   while down destroys 4 domains whose QEMU is stopped (slow: libvirt's SIGTERM, 10 s, SIGKILL).
// - image build through the binary: Ctrl-C while mmdebstrap fetches from a mirror on 127.0.0.1
//   that accepts and never answers.
// Designed behaviour, asserted: provision rolls back everything the run made (man page: "Ctrl-C
// removes it too and exits 130"); down stops after the object in hand and leaves the rest, still
// labelled, to the next down; image build leaves no cache entry and no build directory.

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <labctl/config/loader.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/process.hpp>
#include <labctl/core/signals.hpp>
#include <labctl/image/build.hpp>
#include <labctl/provision/inventory.hpp>
#include <labctl/provision/provision.hpp>
#include <labctl/provision/wait.hpp>

#include "fault_support.hpp"
#include "interrupt_support.hpp"
#include "skip.hpp"
#include "sshd.hpp"
#include "support.hpp"
#include "test_user.hpp"

using namespace labctl;
using namespace std::chrono_literals;
using labctl::test::contains;
using labctl::test::ms;
using labctl::test::read_file;
using labctl::test::TempDir;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> lines_of(const fs::path& p) {
    std::vector<std::string> out;
    std::istringstream in(read_file(p));
    for (std::string line; std::getline(in, line);)
        if (!line.empty())
            out.push_back(line);
    return out;
}

std::string joined(const std::vector<std::string>& v) {
    return fmt::format("{}", fmt::join(v, "; "));
}

/// Runs fault_interrupt_libvirtd.sh in `mode` on a lab of 4 VMs (user-mode network, TCG) whose
/// raw base image is `base_size`; returns the directory with its records (out/).
struct PrivateRun {
    TempDir dir;
    fs::path work;
    fs::path out;

    PrivateRun(const std::string& mode, const std::string& disk) {
        if (::geteuid() != 0)
            test::skip("a private libvirtd in a mount namespace needs root");
        for (const char* p : {"unshare", "libvirtd", "virtlogd", "virsh", "ip", "truncate", "pgrep",
                              "qemu-system-x86_64"})
            test::require_program(p);
        work = dir.path() / "w";
        out = work / "out";
        fs::create_directories(work / ".labctl");
        REQUIRE(run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                             (work / ".labctl" / "id_ed25519").string()})
                    .ok());
        std::string yaml = R"(version: 1
project: intrlv
libvirt:
  uri: qemu:///system
  pool: intrpool
  domain_type: qemu
network:
  mode: user
image:
  path: images/base.raw
  format: raw
vms:
)";
        for (int i = 1; i <= 4; ++i)
            yaml += fmt::format("  - name: vm{}\n    cpus: 1\n    memory: 128MiB\n    disk: {}\n",
                                i, disk);
        dir.write("w/lab.yaml", yaml);
        const auto script =
            test::source_dir() / "tests" / "integration" / "fault_interrupt_libvirtd.sh";
        ProcessOptions po;
        po.timeout = 300s;
        const auto r =
            run_process({"unshare", "--net", "--mount", "--fork", "bash", script.string(),
                         work.string(), test::labctl_binary().string(), mode},
                        po);
        INFO("script: " << r.err << r.out << "\nlabctl stderr:\n" << read_file(out / "run.err"));
        REQUIRE_FALSE(r.timed_out);
        REQUIRE(r.exit_code == 0);
    }
    std::vector<std::string> lines(const std::string& name) const { return lines_of(out / name); }
    std::string text(const std::string& name) const { return read_file(out / name); }
    double after_signal() const {
        return std::stod(text("ended_at")) - std::stod(text("signalled_at"));
    }
};

/// What every interrupted run of the script must show: exit 130 and the message within `bound`
/// seconds of the signal, nothing left of what labctl ran, no temp file of its own.
void check_interrupted(const PrivateRun& run, double bound) {
    const auto err = run.text("run.err");
    INFO("labctl stderr:\n" << err);
    INFO("below labctl at the signal:\n" << run.text("at_signal.txt"));
    const double took = run.after_signal();
    const auto rc = run.lines("rc");
    std::printf("labctl exited %s %.2f s after SIGINT (bound %.0f s)\n",
                rc.empty() ? "?" : rc.front().c_str(), took, bound);
    CHECK(run.text("rc") == "130\n");
    CHECK(contains(err, "labctl: error: interrupted"));
    CHECK(took < bound);
    CHECK(run.lines("left_in_group.txt").empty());
    INFO("alive after: " << joined(run.lines("left_children.txt")));
    CHECK(run.lines("left_children.txt").empty());
    CHECK(run.lines("tmp_after.txt").empty()); // labctl's $TMPDIR
    const auto temps = test::temp_files_below(run.work / ".labctl");
    INFO("temp files in .labctl: " << joined(temps));
    CHECK(temps.empty());
    CHECK(test::processes_matching(run.work.string()).empty());
    CHECK(test::children_of_self().empty());
}

} // namespace

TEST_CASE("Ctrl-C while 4 VMs wait under --parallel 4 (ip wait, blocking cloud-init) ends the "
          "run within 5 s, rolls back every object and leaves no remote command",
          "[fault][interrupt][provision]") {
    const auto marker = test::unique_marker("intr-provision");
    test::Fakes fakes(marker);
    fakes.script("cloud-init", "exec " + fakes.sleeper() + "\n");
    test::TestUser user; // labctl refuses ssh.user root
    test::SshServer sshd({.extra_config = fakes.sshd_setenv()});
    TempDir dir;
    const auto uri =
        "test://" +
        dir.write("node.xml", read_file(test::fixture("libvirt/pool_only.xml"))).string();
    dir.write("images/base.qcow2", test::qcow2_header(2ULL << 30));
    // The lab's key and pins are the fixture's: provision adds the VMs' own pins beside them.
    const auto known = dir.write("known_hosts", read_file(sshd.known_hosts()));
    std::string yaml =
        fmt::format(R"(version: 1
project: intr
libvirt:
  uri: {}
  pool: default
  domain_type: qemu
network:
  name: intr-net
  cidr: 10.66.81.0/24
image:
  path: images/base.qcow2
ssh:
  user: {}
  port: {}
  private_key: {}
  known_hosts: {}
vms:
)",
                    uri, user.name(), sshd.port(), sshd.client_key().string(), known.string());
    for (int i = 1; i <= 4; ++i)
        yaml += fmt::format("  - name: vm{}\n    memory: 1GiB\n    disk: 20GiB\n", i);
    config::LoadOptions lo;
    lo.path = dir.write("lab.yaml", yaml).string();
    const auto loaded = config::load_lab(lo);
    std::string diagnostics;
    for (const auto& d : loaded.diagnostics)
        diagnostics += config::format(d) + "\n";
    INFO(diagnostics);
    REQUIRE(loaded.ok());
    const auto spec = *loaded.spec;

    auto session = provision::LibvirtSession::open(uri);
    const auto inventory_names = [&] {
        std::set<std::string> out;
        const auto inv = session.inventory();
        for (const auto& n : inv.networks)
            out.insert("network:" + n.name);
        for (const auto& p : inv.pools)
            for (const auto& v : p.volumes)
                out.insert("volume:" + v.name);
        for (const auto& d : inv.domains)
            out.insert("domain:" + d.name);
        return out;
    };
    const auto before = inventory_names();

    // vm1, vm2 get a lease (the fixture on 127.0.0.1) and block in cloud-init; vm3, vm4 never do.
    struct Guest final : provision::GuestProbe {
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
    provision::ProvisionOptions po;
    po.parallel = 4;
    po.deadlines.ip = 120s;
    po.deadlines.ssh = 60s;
    po.deadlines.cloud_init = 300s;
    po.deadlines.poll = 100ms;
    po.probe_factory = [&](const config::VmSpec& vm) {
        auto g = std::make_unique<Guest>();
        g->leases = vm.name == "vm1" || vm.name == "vm2";
        ++waiting;
        return g;
    };

    signals::install();
    signals::reset();
    Clock::time_point signalled{};
    std::atomic<bool> blocked{false};
    std::thread ctrl_c([&] {
        blocked = test::wait_until(
            [&] { return waiting == 4 && test::processes_matching(marker).size() >= 2; }, 30s);
        std::this_thread::sleep_for(200ms); // the ip waits are polling
        signalled = Clock::now();
        ::kill(::getpid(), SIGINT); // what the terminal sends; labctl's handler sets the flag
    });
    int code = 0;
    std::string message;
    const auto t0 = Clock::now();
    try {
        provision::provision(spec, session, po);
    } catch (const Error& e) {
        code = to_int(e.code());
        message = e.what();
    }
    const auto ended = Clock::now();
    ctrl_c.join();
    signals::reset();
    INFO(message);
    REQUIRE(blocked);
    INFO("ended " << ms(ended - signalled) << " ms after SIGINT; run took " << ms(ended - t0)
                  << " ms");
    std::printf("provision (in process) ended %ld ms after SIGINT (bound 5000 ms)\n",
                ms(ended - signalled));
    CHECK(code == 130);
    CHECK(contains(message, "interrupted"));
    CHECK(ended - signalled < 5s);
    CHECK(inventory_names() == before); // every network, volume and domain of the run is gone
    const bool remote_gone = test::wait_gone(marker, 3s);
    if (!remote_gone)
        test::kill_matching(marker);
    CHECK(remote_gone);
    std::vector<pid_t> children;
    for (const pid_t p : test::children_of_self())
        if (p != test::pid_of_listener(sshd))
            children.push_back(p);
    CHECK(children.empty());
    const auto temps = test::temp_files_below(dir.path() / ".labctl");
    INFO("temp files in .labctl: " << joined(temps));
    CHECK(temps.empty());
}

TEST_CASE("Ctrl-C while the base image streams to a real libvirtd (labctl provision --parallel "
          "4, 4 VMs) exits 130 within 10 s and rolls back the half-uploaded volume and its "
          "marker",
          "[fault][interrupt][provision]") {
    const PrivateRun run("upload", "5GiB");
    // Mid-upload at the signal: the volume existed and its marker said "unfinished".
    CHECK(run.lines("uploads_at_signal.txt") == std::vector<std::string>{"base.raw.unfinished"});
    check_interrupted(run, 10.0);
    const auto err = run.text("run.err");
    CHECK(contains(err, "removed volume 'base.raw' (created by this run)"));
    CHECK(run.lines("vols_after.txt").empty());
    CHECK(run.lines("pool_after.txt").empty());
    CHECK(run.lines("uploads_after.txt").empty());
    CHECK(run.lines("domains_after.txt").empty());
}

TEST_CASE("Ctrl-C while labctl provision --parallel 4 waits for SSH on 4 running QEMU guests "
          "exits 130 within 15 s, destroys the 4 domains and removes every volume of the run",
          "[fault][interrupt][provision]") {
    const PrivateRun run("wait", "1GiB");
    CHECK(run.lines("qemus_at_signal.txt").size() == 4);
    CHECK(run.lines("domains_at_signal.txt").size() == 4);
    check_interrupted(run, 15.0);
    const auto err = run.text("run.err");
    for (int i = 1; i <= 4; ++i)
        CHECK(contains(err, fmt::format("removed domain 'intrlv-vm{}' (created by this run)", i)));
    INFO("qemu left: " << joined(run.lines("qemus_after.txt")));
    CHECK(run.lines("qemus_after.txt").empty());
    CHECK(run.lines("domains_after.txt").empty());
    CHECK(run.lines("vols_after.txt").empty());
    CHECK(run.lines("pool_after.txt").empty());
    CHECK(run.lines("uploads_after.txt").empty());
}

TEST_CASE("Ctrl-C while labctl down destroys 4 domains whose QEMU is stopped exits 130 within "
          "20 s after the domain in hand, and the next down removes the rest",
          "[fault][interrupt][down]") {
    const PrivateRun run("down", "1GiB");
    INFO("provision before down:\n" << run.text("prep.err"));
    REQUIRE(run.text("prep.rc") == "4\n"); // the SSH waits timed out; --keep-on-failure kept all
    REQUIRE(run.lines("domains_at_signal.txt").size() == 4);
    // libvirt ends a stopped QEMU with SIGTERM, 10 s, SIGKILL: one domain is the bound's core.
    check_interrupted(run, 20.0);
    const auto left = run.lines("domains_after.txt");
    INFO("domains left by the interrupted down: " << joined(left));
    // It stopped: domains are left, each still labctl's (its metadata is what the next down
    // goes by); nothing is half-removed (a domain is there, defined, or gone).
    CHECK(!left.empty());
    CHECK(left.size() < 4);
    for (const auto& d : left)
        CHECK(d.rfind("intrlv-vm", 0) == 0);
    INFO("second down:\n" << run.text("down2.err"));
    CHECK(run.text("down2.rc") == "0\n");
    CHECK(run.lines("domains_after_down2.txt").empty());
    CHECK(run.lines("qemus_after_down2.txt").empty());
    CHECK(run.lines("vols_after_down2.txt") == std::vector<std::string>{"base.raw"});
}

TEST_CASE("Ctrl-C during labctl image build (mmdebstrap fetching from a mirror that never "
          "answers) exits 130 within 45 s, ends mmdebstrap and all it started, and leaves no "
          "cache entry a later run would trust",
          "[fault][interrupt][image]") {
    if (::geteuid() != 0)
        test::skip("labctl image build needs root (mmdebstrap --mode=root)");
    test::require_program("mmdebstrap");
    test::SilentServer mirror; // 127.0.0.1: accepts, never answers
    TempDir dir;
    const auto cache = dir.path() / "cache";
    const auto mirror_url = fmt::format("http://127.0.0.1:{}/debian", mirror.port());
    test::LabctlJob job(
        {"image", "build", "-vv", "--cache-dir", cache.string(), "--mirror", mirror_url});
    // apt inside mmdebstrap has connected to the mirror and waits for its answer.
    const bool fetching = job.wait_for(
        [&] { return mirror.accepted() > 0 && !test::processes_matching(cache.string()).empty(); },
        120s);
    INFO(job.err());
    REQUIRE(fetching);
    std::this_thread::sleep_for(1s);
    job.ctrl_c();
    CHECK(job.ran_at_signal("mmdebstrap"));
    test::check_interrupted_cleanly(job, 45s, cache.string());
    // Only the entry's lock file is left: no build directory, no entry, nothing mounted.
    std::vector<std::string> left;
    for (const auto& e : fs::directory_iterator(cache))
        left.push_back(e.path().filename().string());
    INFO("left in the cache: " << joined(left));
    REQUIRE(left.size() == 1);
    CHECK(left[0].rfind(".bookworm-", 0) == 0);
    CHECK(left[0].size() > 5);
    CHECK(left[0].substr(left[0].size() - 5) == ".lock");
    CHECK_FALSE(contains(read_file("/proc/self/mountinfo"), cache.string()));
    image::BuildOptions bo;
    bo.cache_dir = cache;
    bo.mirror = mirror_url;
    CHECK_FALSE(image::find_cached(bo).has_value());
}
