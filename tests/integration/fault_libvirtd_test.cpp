// Fault cases for provision against a real libvirtd (issue #20): the system libvirtd is shared
// with other tests and is never touched. fault_libvirtd_test.sh runs a private libvirtd inside
// `unshare --net --mount --fork` (its sockets and state bind-mounted over /run/libvirt,
// /var/lib/libvirt, ... in that mount namespace only) and injects the fault:
// - libvirtd SIGKILLed or SIGSTOPped while a 4 GiB sparse raw base image streams into a dir pool:
//   labctl ends within its bound (a few seconds after a kill; keepalive's 5 s x (3 + 1) after a
//   stop) with exit 9, a message saying the libvirt connection was lost and a hint naming
//   `labctl down`; down then removes the half-uploaded volume (never trusted by a later run);
// - the image's reads failing with EIO part-way (a FUSE file system of the test's own), or the
//   image truncated by the script while it streams: exit 2 naming the image, and the volume
//   rolled back in the libvirtd that stayed up, no .unfinished marker left;
// - a domain start refused by a qemu hook ("prepare"): exit 9 naming the domain and the start,
//   the network, pool, volumes and domain the run made rolled back, no QEMU or dnsmasq left;
// - a socket that accepts and never answers: the open gives up with exit 3 after 30 s.
// Each asserts the bound it ran within and that no process is left.

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <labctl/core/process.hpp>

#include "fault_support.hpp"
#include "fuse_file.hpp"
#include "skip.hpp"
#include "support.hpp"

using namespace labctl;
using namespace std::chrono_literals;
using labctl::test::read_file;
using labctl::test::TempDir;
namespace fs = std::filesystem;

namespace {

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    return s;
}

using labctl::test::contains;

bool has_line(const std::string& text, const std::string& line) {
    std::istringstream in(text);
    std::string l;
    while (std::getline(in, l))
        if (trimmed(l) == line)
            return true;
    return false;
}

/// The lab of the upload cases: a 4 GiB raw base image streamed into the pool the script made.
const char* const k_upload_lab = R"(version: 1
project: faultlv
libvirt:
  uri: qemu:///system
  pool: faultpool
  domain_type: qemu
network:
  mode: user
  forwards:
    - {guest: 22, host: 2299}
image:
  path: images/base.raw
  format: raw
vms:
  - name: vm1
    memory: 512MiB
    disk: 5GiB
)";

void require_private_libvirtd() {
    if (::geteuid() != 0)
        test::skip("a private libvirtd in a mount namespace needs root");
    for (const char* p : {"unshare", "libvirtd", "virtlogd", "virsh", "ip", "truncate"})
        test::require_program(p);
}

/// <dir>/w with the lab's key pair and `lab_yaml` (every "@W@" replaced by that directory).
fs::path make_work(const TempDir& dir, std::string lab_yaml) {
    const auto work = dir.path() / "w";
    fs::create_directories(work / ".labctl");
    REQUIRE(run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                         (work / ".labctl" / "id_ed25519").string()})
                .ok());
    for (auto at = lab_yaml.find("@W@"); at != std::string::npos; at = lab_yaml.find("@W@"))
        lab_yaml.replace(at, 3, work.string());
    dir.write("w/lab.yaml", lab_yaml);
    return work;
}

/// Runs the script in `mode` inside its own network and mount namespace (bounded).
void run_script(const fs::path& work, const std::string& mode) {
    const auto script = test::source_dir() / "tests" / "integration" / "fault_libvirtd_test.sh";
    ProcessOptions po;
    po.timeout = 240s;
    const auto r = run_process({"unshare", "--net", "--mount", "--fork", "bash", script.string(),
                                work.string(), test::labctl_binary().string(), mode},
                               po);
    INFO("script: " << r.err << r.out);
    REQUIRE_FALSE(r.timed_out);
    REQUIRE(r.exit_code == 0);
}

double seconds_between(const fs::path& work, const char* from, const char* to) {
    return std::stod(read_file(work / to)) - std::stod(read_file(work / from));
}

/// libvirtd killed or stopped mid-upload; `bound` is how long after the fault labctl may take.
void run_mid_upload_fault(const std::string& mode, double bound) {
    require_private_libvirtd();
    TempDir dir;
    const auto work = make_work(dir, k_upload_lab);
    run_script(work, mode);

    const std::string err = read_file(work / "provision.err");
    INFO("provision stderr:\n"
         << err << "\npool at the fault:\n"
         << read_file(work / "pool_at_kill.txt"));
    CHECK(trimmed(read_file(work / "provision.rc")) == "9");
    CHECK(contains(err, "labctl: error: provision: "));
    CHECK(contains(err, "the libvirt connection was lost"));
    CHECK(contains(err, "hint: "));
    CHECK(contains(err, "'labctl down' removes what is left"));
    const double took = seconds_between(work, "killed_at", "ended_at");
    INFO("labctl ended " << took << " s after libvirtd was " << mode << "ped");
    CHECK(took < bound);

    const std::string down = read_file(work / "down.out") + read_file(work / "down.err");
    INFO("down:\n" << down);
    CHECK(trimmed(read_file(work / "down.rc")) == "0");
    CHECK(contains(down, "base.raw"));
    CHECK(trimmed(read_file(work / "vols_after_down.txt")).empty());
    CHECK(trimmed(read_file(work / "pool_after_down.txt")).empty());
    CHECK_FALSE(fs::exists(work / ".labctl" / "uploads" / "base.raw.unfinished"));
    CHECK(test::processes_matching(work.string()).empty());
    CHECK(test::children_of_self().empty());
}

/// After a failed run against a libvirtd that stayed up: nothing of the run left in libvirt, in
/// the pool directory, in .labctl/uploads or among the namespace's processes.
void check_rolled_back(const fs::path& work, const std::string& network, const std::string& pool) {
    INFO("domains: " << read_file(work / "domains_after.txt")
                     << "\nnetworks: " << read_file(work / "networks_after.txt")
                     << "\npools: " << read_file(work / "pools_after.txt")
                     << "\nvolumes: " << read_file(work / "vols_after.txt")
                     << "\npool directory: " << read_file(work / "pool_after.txt")
                     << "\nprocesses: " << read_file(work / "procs_after.txt"));
    CHECK(trimmed(read_file(work / "domains_after.txt")).empty());
    if (!network.empty())
        CHECK_FALSE(has_line(read_file(work / "networks_after.txt"), network));
    if (!pool.empty())
        CHECK_FALSE(has_line(read_file(work / "pools_after.txt"), pool));
    CHECK(trimmed(read_file(work / "vols_after.txt")).empty());
    CHECK(trimmed(read_file(work / "pool_after.txt")).empty());
    std::vector<std::string> markers;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(work / ".labctl" / "uploads", ec))
        markers.push_back(e.path().filename().string());
    INFO("upload markers: " << fmt::format("{}", fmt::join(markers, " ")));
    CHECK(markers.empty());
    CHECK(trimmed(read_file(work / "procs_after.txt")).empty());
    CHECK(test::processes_matching(work.string()).empty());
    CHECK(test::children_of_self().empty());
}

} // namespace

TEST_CASE("libvirtd killed while the base image streams: exit 9 within seconds naming the lost "
          "connection and labctl down, which then removes the half-uploaded volume",
          "[fault][provision]") {
    run_mid_upload_fault("kill", 5.0);
}

TEST_CASE("libvirtd stopped while the base image streams: keepalive ends the upload with exit 9 "
          "within 30 s and labctl down removes the half-uploaded volume",
          "[fault][provision]") {
    // Keepalive: a ping every 5 s, the connection closed after 3 unanswered, so about 20 s; 30 s
    // leaves room for a loaded machine without accepting a hang.
    run_mid_upload_fault("stop", 30.0);
}

TEST_CASE("a libvirt socket that accepts and never answers: the open gives up with exit 3 after "
          "30 s naming the URI",
          "[fault][provision]") {
    TempDir dir;
    const auto sock_path = dir.path() / "silent.sock";
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    REQUIRE(sock_path.string().size() < sizeof(addr.sun_path));
    std::copy_n(sock_path.string().c_str(), sock_path.string().size() + 1, addr.sun_path);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    REQUIRE(::listen(fd, 8) == 0); // connections queue in the backlog; nothing is ever read
    const std::string uri = "qemu+unix:///system?socket=" + sock_path.string();
    dir.write("lab.yaml", fmt::format(R"(version: 1
project: silentlv
libvirt:
  uri: "{}"
network:
  mode: user
  forwards:
    - {{guest: 22, host: 2298}}
image:
  path: base.qcow2
vms:
  - name: vm1
)",
                                      uri));
    dir.write("base.qcow2", "not used: the open never completes");
    // The lab must be valid up to the connection: its default key pair exists.
    fs::create_directories(dir.path() / ".labctl");
    REQUIRE(run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                         (dir.path() / ".labctl" / "id_ed25519").string()})
                .ok());
    ProcessOptions po;
    po.timeout = 90s;
    po.cwd = dir.path().string();
    const auto started = std::chrono::steady_clock::now();
    const auto r = run_process(
        {test::labctl_binary().string(), "provision", "-f", (dir.path() / "lab.yaml").string()},
        po);
    const double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    ::close(fd);
    INFO("stderr: " << r.err << "\nended after " << took << " s");
    REQUIRE_FALSE(r.timed_out);
    CHECK(r.exit_code == 3);
    CHECK(contains(r.err, "cannot connect to libvirt at " + uri + ": no answer within 30 s"));
    CHECK(contains(r.err, "hint: "));
    CHECK(took >= 29.0);
    CHECK(took < 45.0);
    CHECK(test::children_of_self().empty());
}

TEST_CASE("a read error (EIO) part-way through the base image upload is exit 2 naming the image, "
          "the offset and the errno, and the volume is rolled back in libvirtd with no marker "
          "left",
          "[fault][provision]") {
    require_private_libvirtd();
    if (!fs::exists("/dev/fuse"))
        test::skip("a file whose reads fail needs FUSE (/dev/fuse)");
    TempDir dir;
    const auto work = make_work(dir, k_upload_lab);
    // 4 GiB whose reads fail from 256 MiB on, on a FUSE file system of the test's own (the
    // script's mount namespace is a copy of this one, so labctl there reads through it).
    constexpr std::uint64_t k_bad = 256ULL << 20;
    test::FaultyFuseFile image(work / "images", "base.raw", 4ULL << 30, k_bad);
    run_script(work, "eio");

    const std::string err = read_file(work / "provision.err");
    INFO("provision stderr:\n" << err);
    CHECK(image.eio_replies() > 0); // the fault happened, in the kernel, under labctl's read(2)
    CHECK(image.served() == k_bad); // the upload ran up to it
    CHECK(trimmed(read_file(work / "provision.rc")) == "2");
    CHECK(contains(err, fmt::format("labctl: error: error while reading {} after {} bytes: "
                                    "Input/output error",
                                    (work / "images" / "base.raw").string(), k_bad)));
    CHECK(contains(err, "hint: the image or the disk under it is damaged"));
    const double took = seconds_between(work, "started_at", "ended_at");
    INFO("labctl ran " << took << " s");
    CHECK(took < 60.0);
    check_rolled_back(work, {}, {});
}

TEST_CASE("the base image truncated while it streams is exit 2 saying it changed while it was "
          "read, and the volume is rolled back in libvirtd with no marker left",
          "[fault][provision]") {
    require_private_libvirtd();
    TempDir dir;
    const auto work = make_work(dir, k_upload_lab);
    run_script(work, "shrink");

    const std::string err = read_file(work / "provision.err");
    INFO("provision stderr:\n"
         << err << "\npool when the image was cut:\n"
         << read_file(work / "pool_at_kill.txt"));
    CHECK(trimmed(read_file(work / "provision.rc")) == "2");
    CHECK(contains(err, fmt::format("labctl: error: {} changed while it was read: ",
                                    (work / "images" / "base.raw").string())));
    CHECK(contains(err, "bytes instead of 4294967296"));
    CHECK(contains(err, "hint: do not modify the image while labctl provisions from it"));
    const double took = seconds_between(work, "killed_at", "ended_at");
    INFO("labctl ended " << took << " s after the image was cut");
    CHECK(took < 10.0);
    check_rolled_back(work, {}, {});
}

TEST_CASE("a domain that fails to start (a qemu hook refuses it) is exit 9 naming the domain and "
          "the start phase, with the network, pool and volumes the run made rolled back and no "
          "process left",
          "[fault][provision]") {
    require_private_libvirtd();
    for (const char* p : {"dnsmasq", "qemu-system-x86_64"})
        test::require_program(p);
    TempDir dir;
    // Mode nat: the run makes the network (its dnsmasq included), the DHCP host, the pool, the
    // base image, the overlay, the seed and the domain before the start fails.
    const auto work = make_work(dir, R"(version: 1
project: faulthook
libvirt:
  uri: qemu:///system
  pool: faulthookpool
  pool_path: @W@/pool
  domain_type: qemu
network:
  name: faulthook-net
  cidr: 10.66.93.0/24
image:
  path: images/base.raw
  format: raw
vms:
  - name: vm1
    memory: 512MiB
    disk: 1GiB
)");
    run_script(work, "hook");

    const std::string err = read_file(work / "provision.err");
    INFO("provision stderr:\n" << err << "\nhook calls:\n" << read_file(work / "hook.log"));
    CHECK(contains(read_file(work / "hook.log"), "faulthook-vm1 prepare begin"));
    CHECK(trimmed(read_file(work / "provision.rc")) == "9");
    CHECK(contains(err, "labctl: error: provision: starting domain 'faulthook-vm1' failed: "));
    CHECK(contains(err, "refused by the fault test's qemu hook"));
    CHECK(contains(err, "hint: rolled back what this run made: "));
    for (const char* made : {"domain 'faulthook-vm1'", "volume 'faulthook-vm1-seed.iso'",
                             "volume 'faulthook-vm1.qcow2'", "volume 'base.raw'",
                             "storage pool 'faulthookpool'", "network 'faulthook-net'"})
        CHECK(contains(err, made));
    CHECK_FALSE(contains(err, "left:"));
    const double took = seconds_between(work, "started_at", "ended_at");
    INFO("labctl ran " << took << " s");
    CHECK(took < 60.0);
    check_rolled_back(work, "faulthook-net", "faulthookpool");
}
