// Fault case for provision against a real libvirtd that dies mid-provision (issue #20): the
// system libvirtd is shared with other tests and is never touched. fault_libvirtd_test.sh runs a
// private libvirtd inside `unshare --net --mount --fork` (its sockets and state bind-mounted over
// /run/libvirt, /var/lib/libvirt, ... in that mount namespace only), lets labctl stream a 4 GiB
// sparse raw base image into a dir pool, SIGKILLs libvirtd during the upload, restarts it and
// runs `labctl down`. Asserted here: labctl ended within a few seconds of the kill with exit 9,
// a message saying the libvirt connection was lost and a hint naming `labctl down`; down then
// removed the half-uploaded volume (it is never trusted by a later run); no process is left.

#include <fmt/format.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <string>

#include <labctl/core/process.hpp>

#include "fault_support.hpp"
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

bool contains(const std::string& hay, const std::string& needle) {
    return hay.find(needle) != std::string::npos;
}

} // namespace

TEST_CASE("libvirtd killed while the base image streams: exit 9 within seconds naming the lost "
          "connection and labctl down, which then removes the half-uploaded volume",
          "[fault][provision]") {
    if (::geteuid() != 0)
        test::skip("a private libvirtd in a mount namespace needs root");
    for (const char* p : {"unshare", "libvirtd", "virtlogd", "virsh", "ip", "truncate"})
        test::require_program(p);
    TempDir dir;
    const auto work = dir.path() / "w";
    fs::create_directories(work / ".labctl");
    REQUIRE(run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                         (work / ".labctl" / "id_ed25519").string()})
                .ok());
    dir.write("w/lab.yaml", R"(version: 1
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
)");
    const auto script = test::source_dir() / "tests" / "integration" / "fault_libvirtd_test.sh";
    ProcessOptions po;
    po.timeout = 240s;
    const auto r = run_process({"unshare", "--net", "--mount", "--fork", "bash", script.string(),
                                work.string(), test::labctl_binary().string()},
                               po);
    INFO("script: " << r.err << r.out);
    REQUIRE_FALSE(r.timed_out);
    REQUIRE(r.exit_code == 0);

    const std::string err = read_file(work / "provision.err");
    INFO("provision stderr:\n"
         << err << "\npool at the kill:\n"
         << read_file(work / "pool_at_kill.txt"));
    CHECK(trimmed(read_file(work / "provision.rc")) == "9");
    CHECK(contains(err, "labctl: error: provision: "));
    CHECK(contains(err, "the libvirt connection was lost"));
    CHECK(contains(err, "hint: "));
    CHECK(contains(err, "'labctl down' removes what is left"));
    const double killed = std::stod(read_file(work / "killed_at"));
    const double ended = std::stod(read_file(work / "ended_at"));
    INFO("labctl ended " << ended - killed << " s after libvirtd was killed");
    CHECK(ended - killed < 5.0);

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
