// Fault cases of issue #20, "Ctrl-C in every stage", for the stages that work on a host over SSH:
// harden, deploy (rsync, preload's docker load), verify and `labctl up`. Each runs the labctl
// binary against the sshd fixture as an existing host (a lab whose VM is the fixture), and sends
// Ctrl-C as a terminal does: SIGINT to labctl's process group (tests/support/
// interrupt_support.hpp says why that and not the process). Each asserts exit 130, "labctl:
// error: interrupted", the end within a stated bound after the signal, nothing left of what
// labctl ran here (its group, every descendant it had at the signal), nothing left running on
// the target (the commands there carry a marker in their command lines, and the check looks for
// exactly that marker), an empty $TMPDIR and no temp file in the lab's .labctl or on the target.
// Where the stage blocks: programs standing in for the target's own come first in the fixture's
// PATH (sshd_config SetEnv) and sudo's secure_path (a sudoers drop-in): an `sshd -T` that
// sleeps, a link that feeds the receiving rsync slowly, a `docker load` that reads slowly. The
// rest is real: OpenSSH, sudo, rsync, this machine's Docker for `docker save`.
// The provision, down and image build cases are in fault_interrupt_libvirt_test.cpp.

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <labctl/core/process.hpp>
#include <labctl/core/text.hpp>
#include <labctl/remote/session.hpp>

#include "fault_support.hpp"
#include "interrupt_support.hpp"
#include "skip.hpp"
#include "sshd.hpp"
#include "support.hpp"
#include "test_user.hpp"

using namespace labctl;
using namespace std::chrono_literals;
using labctl::test::contains;
using labctl::test::LabctlJob;
using labctl::test::TempDir;
namespace fs = std::filesystem;

namespace {

std::string host_lab(const test::SshServer& sshd, const std::string& user, const TempDir& dir,
                     const std::string& deploy_extra = {}) {
    return fmt::format(R"(version: 1
project: intr
network:
  cidr: 127.0.0.0/24
ssh:
  user: {}
  port: {}
  private_key: {}
  known_hosts: {}
vms:
  - name: box
    ip: {}
hardening:
  revert_seconds: 60
  # the host parts would change this machine: a VM gets them (e2e)
  firewall: false
  fail2ban: false
  auditd: false
  sysctl: false
deploy:
  stack_dir: stack
  remote_dir: {}/remote/stack
  project: intr
  wait_timeout: 60
{})",
                       user, sshd.port(), sshd.client_key().string(), sshd.known_hosts().string(),
                       sshd.host(), dir.path().string(), deploy_extra);
}

std::string random_bytes(std::size_t n) {
    std::independent_bits_engine<std::mt19937_64, 8, unsigned> gen(std::random_device{}());
    std::string s(n, '\0');
    for (auto& c : s)
        c = static_cast<char>(gen());
    return s;
}

/// A `sshd` whose -T (the effective-settings dump) blocks; everything else is the real sshd.
/// An sshd whose -T blocks (with `dropin`, only once that file exists: the probe before
/// hardening, which hashes sshd -T too, answers; the check of the new configuration hangs).
/// It answers nothing of its own: -T blocks, everything else is the real /usr/sbin/sshd.
void fake_sshd_dump(const test::Fakes& fakes, const fs::path& dropin = {}) {
    const std::string when =
        dropin.empty() ? "" : "[ -f " + shell_quote(dropin.string()) + " ] && ";
    fakes.script("sshd", fmt::format("case \"$1\" in -T) {}exec {} ;; esac\n"
                                     "exec /usr/sbin/sshd \"$@\"\n",
                                     when, fakes.sleeper()));
}

/// An `rsync` behind a slow link: the real rsync (a copy named after the marker) gets its input
/// 32 KiB at a time, ten times a second, through a reader that also carries the marker. When the
/// connection goes, the reader sees EOF and so does rsync: what a real slow link does.
void slow_rsync(const test::Fakes& fakes, const std::string& marker) {
    const auto rsync = fakes.copy_program("/usr/bin/rsync", marker + "-rsync");
    fakes.script(
        "rsync",
        fmt::format("perl -e 'while (sysread(STDIN, $b, 32768)) {{ syswrite(STDOUT, $b) "
                    "or exit 1; select(undef, undef, undef, 0.1) }}' {}-link | {} \"$@\"\n",
                    marker, rsync.string()));
}

/// rsync's temp file of `name` in `dir` (".name.XXXXXX"), with its size; empty when none.
std::vector<std::string> rsync_temps(const fs::path& dir, const std::string& name) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.path().filename().string().rfind("." + name + ".", 0) == 0)
            out.push_back(e.path().filename().string());
    return out;
}

bool receiving(const fs::path& dir, const std::string& name) {
    std::error_code ec;
    for (const auto& t : rsync_temps(dir, name))
        if (fs::file_size(dir / t, ec) > 0)
            return true;
    return false;
}

remote::ConnectOptions probe_options(const test::SshServer& sshd, const std::string& user) {
    remote::ConnectOptions o;
    o.endpoint = {sshd.host(), sshd.port(), user};
    o.known_hosts = sshd.known_hosts().string();
    o.private_key = sshd.client_key().string();
    o.connect_timeout = 5s;
    o.io_timeout = 5s;
    return o;
}

bool offers_password(const remote::ConnectOptions& o) {
    const auto methods = remote::Session::probe(o).auth_methods;
    return std::find(methods.begin(), methods.end(), "password") != methods.end();
}

std::vector<std::string> files_in(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir))
        out.push_back(e.path().filename().string());
    return out;
}

} // namespace

TEST_CASE("Ctrl-C while harden waits for SSH on a host that refuses connections exits 130 "
          "within 3 s, long before its --wait",
          "[fault][interrupt][harden]") {
    test::SshServer sshd({.listen_address = "127.0.0.7"}); // only for the key files
    TempDir dir;
    const auto lab = dir.write("lab.yaml", host_lab(sshd, "labctl", dir)).string();
    const int closed = test::free_port();
    LabctlJob job({"harden", "-vv", "-f", lab, "--wait", "120s", "--host",
                   fmt::format("127.0.0.1:{}", closed)});
    // A few connection attempts (refused) into the 120 s wait.
    const bool waiting = job.wait_for([&] { return contains(job.err(), "not ready yet"); }, 20s);
    INFO(job.err());
    REQUIRE(waiting);
    std::this_thread::sleep_for(1s);
    job.ctrl_c();
    // Nothing reached a host: the marker check is of nothing (no remote command could start).
    test::check_interrupted_cleanly(job, 3s, test::unique_marker("intr-harden-wait"));
    CHECK(test::temp_files_below(dir.path() / ".labctl").empty());
}

TEST_CASE("Ctrl-C during harden while the revert is armed (the new sshd configuration live, "
          "labctl in its sshd -T check) restores the previous configuration before it exits 130 "
          "within 10 s, and leaves no process, remote command or temp file",
          "[fault][interrupt][harden]") {
    const auto marker = test::unique_marker("intr-harden-armed");
    test::Fakes fakes(marker);
    test::TestUser user;
    test::SudoPath sudo_path(user.name(), fakes); // harden runs sshd through sudo
    test::SshServer sshd({.extra_config = fakes.sshd_setenv(),
                          .include_dropins = true,
                          .password_auth = true,
                          .listen_address = "127.0.0.2"});
    fake_sshd_dump(fakes, sshd.dropin_dir() / "01-labctl.conf");
    TempDir dir;
    const auto probe = probe_options(sshd, user.name());
    REQUIRE(offers_password(probe)); // the "before"
    REQUIRE(files_in(sshd.dropin_dir()).empty());
    const auto dropin = sshd.dropin_dir() / "01-labctl.conf";
    const std::string revert_pid = dropin.string() + ".labctl-revert.pid";
    const std::string revert_script = dropin.string() + ".labctl-revert.sh";

    const auto lab = dir.write("lab.yaml", host_lab(sshd, user.name(), dir)).string();
    LabctlJob job({"harden", "-vv", "-f", lab});
    const bool blocked =
        job.wait_for([&] { return !test::processes_matching(marker).empty(); }, 60s);
    INFO(job.err());
    REQUIRE(blocked);
    // The armed window: the hardened drop-in is live (no password offered), the revert armed.
    REQUIRE(fs::exists(dropin));
    REQUIRE(fs::exists(revert_pid));
    REQUIRE_FALSE(offers_password(probe));
    job.ctrl_c();
    test::check_interrupted_cleanly(job, 10s, marker);

    // Designed (man page: "any failure reverts the change"; exit 130 is "after cleanup"): the
    // old configuration is back and live now, not when the armed revert would have fired.
    INFO("drop-in dir: " << fmt::format("{}", fmt::join(files_in(sshd.dropin_dir()), " ")));
    CHECK(files_in(sshd.dropin_dir()).empty()); // no drop-in, backup, marker, revert script
    CHECK(offers_password(probe));
    CHECK(test::processes_matching(revert_script).empty()); // the armed revert is disarmed
    CHECK(user.password_state() == "P");                    // harden never got to passwd -l
    CHECK(test::temp_files_below(dir.path() / ".labctl").empty());
}

TEST_CASE("Ctrl-C during deploy while rsync sends the stack exits 130 within 10 s and leaves no "
          "rsync here or there and no partial file on the target",
          "[fault][interrupt][deploy]") {
    test::require_program("rsync");
    test::require_program("perl");
    const auto marker = test::unique_marker("intr-rsync");
    test::Fakes fakes(marker);
    slow_rsync(fakes, marker);
    test::TestUser user;
    test::SudoPath sudo_path(user.name(), fakes); // rsync runs through sudo there
    test::SshServer sshd({.extra_config = fakes.sshd_setenv(), .listen_address = "127.0.0.3"});
    TempDir dir;
    dir.write("stack/docker-compose.yml", "services:\n  web:\n    image: busybox\n");
    dir.write("stack/big.bin", random_bytes(8 << 20)); // about 25 s through the slow link
    const auto remote = dir.path() / "remote" / "stack";
    fs::create_directories(remote.parent_path());
    test::give_to(remote.parent_path(), user.name());
    const auto lab = dir.write("lab.yaml", host_lab(sshd, user.name(), dir)).string();
    LabctlJob job({"deploy", "-vv", "-f", lab});
    const bool sending = job.wait_for([&] { return receiving(remote, "big.bin"); }, 60s);
    INFO(job.err());
    REQUIRE(sending);
    job.ctrl_c();
    CHECK(job.ran_at_signal("rsync"));
    test::check_interrupted_cleanly(job, 10s, marker);
    // The receiving rsync saw its input end and removed its partial file.
    CHECK(test::wait_until([&] { return rsync_temps(remote, "big.bin").empty(); }, 3s));
    CHECK_FALSE(fs::exists(remote / "big.bin"));
    const auto temps = test::temp_files_below(dir.path() / ".labctl");
    INFO("temp files in .labctl: " << fmt::format("{}", fmt::join(temps, " ")));
    CHECK(temps.empty());
}

namespace {
/// The lab of a preload interrupt test: an empty stack deployed to the user's remote/, with
/// `image` preloaded.
std::string preload_lab(const test::SshServer& sshd, const std::string& user, const TempDir& dir,
                        const std::string& image) {
    dir.write("stack/docker-compose.yml", "services: {}\n");
    fs::create_directories(dir.path() / "remote");
    test::give_to(dir.path() / "remote", user);
    return dir
        .write("lab.yaml",
               host_lab(sshd, user, dir, fmt::format("  preload_images: [{}]\n", image)))
        .string();
}

/// What the preload interrupt tests need here: Docker (running), rsync and perl.
void require_preload_tools() {
    test::require_program("docker");
    test::require_program("rsync");
    test::require_program("perl");
    if (!run_process({"docker", "info"}, {.timeout = 30s}).ok())
        test::skip("dockerd is not running (scripts/start-services starts it)");
}
} // namespace

TEST_CASE("Ctrl-C during deploy while preload streams an image into docker load on the target "
          "exits 130 within 10 s and ends docker save here and docker load there",
          "[fault][interrupt][deploy][preload]") {
    require_preload_tools();
    const auto marker = test::unique_marker("intr-load");
    test::Fakes fakes(marker);
    // compose version: v2 (deploy's detection; `docker compose version --short` prints the bare
    // version, docker/compose@v2.24.5:cmd/compose/version.go); ps: no container of the project
    // (nothing printed, exit 0, as docker/cli@v20.10.24:cli/command/container/list.go answers an
    // empty list with --format); anything else, e.g. `image ls`: fails (so every image is sent);
    // load: reads the stream 64 KiB at a time, ten times a second (and never finishes).
    fakes.script("docker", fmt::format(R"(case "$1" in
compose) echo 2.99.0 ;;
ps) exit 0 ;;
load) exec perl -e 'while (sysread(STDIN, $b, 65536)) {{ select(undef, undef, undef, 0.1) }}' {}-load ;;
*) exit 1 ;;
esac
)",
                                       marker));
    test::TestUser user;
    test::SudoPath sudo_path(user.name(), fakes);
    test::SshServer sshd({.extra_config = fakes.sshd_setenv(), .listen_address = "127.0.0.5"});
    TempDir dir;
    // A 16 MiB image (random, so nothing compresses it away): about 25 s through that reader.
    const std::string image = fmt::format("labctl-test/intr-load:{}", ::getpid());
    {
        TempDir root;
        root.write("blob", random_bytes(16 << 20));
        const auto r = run_process(
            {"sh", "-c",
             fmt::format("tar -C {} -c . | docker import - {}", root.path().string(), image)},
            {.timeout = 120s});
        INFO(r.err);
        REQUIRE(r.ok());
    }
    struct RemoveImage {
        std::string name;
        ~RemoveImage() { run_process({"docker", "image", "rm", "-f", name}, {.timeout = 60s}); }
    } remove_image{image};
    const auto lab = preload_lab(sshd, user.name(), dir, image);
    LabctlJob job({"deploy", "-vv", "-f", lab});
    const bool streaming = job.wait_for(
        [&] {
            if (test::processes_matching(marker + "-load").empty())
                return false;
            for (const pid_t p : test::descendants(job.pid()))
                if (contains(test::process_cmdline(p), "docker save"))
                    return true;
            return false;
        },
        90s);
    INFO(job.err());
    REQUIRE(streaming);
    std::this_thread::sleep_for(1s);
    job.ctrl_c();
    CHECK(job.ran_at_signal("docker save"));
    test::check_interrupted_cleanly(job, 10s, marker);
    CHECK(test::temp_files_below(dir.path() / ".labctl").empty());
}

TEST_CASE("Ctrl-C while preload sends an archive without the layers the target has exits 130 "
          "within 10 s, ends docker load there and removes the saved archive here",
          "[fault][interrupt][deploy][preload]") {
    require_preload_tools();
    // Two layers: a small base the target holds, and 16 MiB of random bytes on top that it lacks.
    const std::string base = fmt::format("labctl-test/intr-base:{}", ::getpid());
    const std::string image = fmt::format("labctl-test/intr-layers:{}", ::getpid());
    struct RemoveImages {
        std::vector<std::string> names;
        ~RemoveImages() {
            for (const auto& n : names)
                run_process({"docker", "image", "rm", "-f", n}, {.timeout = 60s});
        }
    } remove_images{{image, base}};
    {
        TempDir root;
        root.write("base.txt", "the base layer\n");
        REQUIRE(run_process({"sh", "-c",
                             fmt::format("tar -C {} -c . | docker import - {}",
                                         root.path().string(), base)},
                            {.timeout = 120s})
                    .ok());
        TempDir ctx;
        ctx.write("blob", random_bytes(16 << 20));
        ctx.write("Dockerfile", fmt::format("FROM {}\nCOPY blob /blob\n", base));
        const auto r = run_process({"docker", "build", "-q", "-t", image, ctx.path().string()},
                                   {.timeout = 120s});
        INFO(r.err);
        REQUIRE(r.ok());
    }
    const auto base_diff = std::string(trim(
        run_process({"docker", "image", "inspect", "--format", "{{index .RootFS.Layers 0}}", base})
            .out));
    REQUIRE(base_diff.rfind("sha256:", 0) == 0);
    const auto marker = test::unique_marker("intr-layers");
    test::Fakes fakes(marker);
    // The target's Docker: compose v2; no container; one image whose only layer is the base:
    // `image ls -aq --no-trunc` prints one full id a line (docker/cli@v20.10.24:
    // cli/command/image/list.go, cli/command/formatter/image.go), and `image inspect --format`
    // prints the template once per image, a line each (docker/cli@v20.10.24:
    // cli/command/inspect/inspector.go, TemplateInspector); load reads the stream 64 KiB at a
    // time, ten times a second (and never finishes).
    fakes.script("docker", fmt::format(R"(case "$1 $2" in
compose*) echo 2.99.0 ;;
ps*) exit 0 ;;
"image ls") echo sha256:{0} ;;
"image inspect") echo "{1} " ;;
load*) exec perl -e 'while (sysread(STDIN, $b, 65536)) {{ select(undef, undef, undef, 0.1) }}' {2}-load ;;
*) exit 1 ;;
esac
)",
                                       std::string(64, 'e'), base_diff, marker));
    test::TestUser user;
    test::SudoPath sudo_path(user.name(), fakes);
    test::SshServer sshd({.extra_config = fakes.sshd_setenv(), .listen_address = "127.0.0.6"});
    TempDir dir;
    const auto lab = preload_lab(sshd, user.name(), dir, image);
    LabctlJob job({"deploy", "-vv", "-f", lab});
    const bool streaming =
        job.wait_for([&] { return !test::processes_matching(marker + "-load").empty(); }, 90s);
    INFO(job.err());
    REQUIRE(streaming);
    // The archive was saved here and goes without the base layer.
    CHECK(contains(job.err(), "1 layer file the target already has left out"));
    CHECK_FALSE(test::temp_files_below(dir.path() / ".labctl").empty());
    std::this_thread::sleep_for(1s);
    job.ctrl_c();
    test::check_interrupted_cleanly(job, 10s, marker);
    CHECK(test::temp_files_below(dir.path() / ".labctl").empty());
}

TEST_CASE("Ctrl-C during verify --parallel 4 (endpoints that refuse, ssh.hardened blocked in "
          "sshd -T on the host) exits 130 within 5 s and leaves no process, remote command or "
          "temp file",
          "[fault][interrupt][verify]") {
    const auto marker = test::unique_marker("intr-verify");
    test::Fakes fakes(marker);
    fake_sshd_dump(fakes);
    test::TestUser user;
    test::SudoPath sudo_path(user.name(), fakes); // ssh.hardened runs sshd -T through sudo
    test::SshServer sshd({.extra_config = fakes.sshd_setenv(), .listen_address = "127.0.0.4"});
    TempDir dir;
    const auto lab = dir.write("lab.yaml", host_lab(sshd, user.name(), dir)).string();
    LabctlJob job(
        {"verify", "-v", "-f", lab, "--host", sshd.host(), "--deadline", "120s", "--parallel", "4",
         // 4 checks, all running at once under --parallel 4 (ssh.hardened is the last of the
         // default 7, so with all of them it would start only when one of the first 4 ended).
         "--skip", "prometheus.sli", "--skip", "logs.correlated", "--skip", "grafana.provisioned"});
    // ssh.hardened's remote command is running; the other 3 checks poll for up to 120 s.
    const bool blocked =
        job.wait_for([&] { return !test::processes_matching(marker).empty(); }, 30s);
    INFO(job.err());
    REQUIRE(blocked);
    std::this_thread::sleep_for(1s);
    job.ctrl_c();
    test::check_interrupted_cleanly(job, 5s, marker);
    CHECK(job.out().empty()); // no report of half-run checks
    CHECK(test::temp_files_below(dir.path() / ".labctl").empty());
}

TEST_CASE("Ctrl-C during labctl up, in its deploy stage after harden finished, exits 130 within "
          "10 s, starts no later stage, keeps the finished stage and leaves nothing running",
          "[fault][interrupt][up]") {
    test::require_program("rsync");
    test::require_program("perl");
    const auto marker = test::unique_marker("intr-up");
    test::Fakes fakes(marker);
    slow_rsync(fakes, marker);
    test::TestUser user;
    test::SudoPath sudo_path(user.name(), fakes);
    test::SshServer sshd({.extra_config = fakes.sshd_setenv(),
                          .include_dropins = true,
                          .listen_address = "127.0.0.6"});
    TempDir dir;
    dir.write("stack/docker-compose.yml", "services:\n  web:\n    image: busybox\n");
    dir.write("stack/big.bin", random_bytes(8 << 20));
    const auto remote = dir.path() / "remote" / "stack";
    fs::create_directories(remote.parent_path());
    test::give_to(remote.parent_path(), user.name());
    const auto lab = dir.write("lab.yaml", host_lab(sshd, user.name(), dir)).string();
    LabctlJob job({"up", "--from", "harden", "-f", lab});
    const bool sending = job.wait_for([&] { return receiving(remote, "big.bin"); }, 120s);
    INFO(job.err());
    REQUIRE(sending);
    job.ctrl_c();
    test::check_interrupted_cleanly(job, 10s, marker);
    const auto err = job.err();
    CHECK(contains(err, "==> [1/3] harden"));
    CHECK(contains(err, "<== harden done"));
    CHECK(contains(err, "==> [2/3] deploy"));
    CHECK_FALSE(contains(err, "==> [3/3] verify"));
    CHECK(contains(err, "failed (exit 130)"));
    CHECK(job.out().empty());
    // Designed: up is resumable; a finished stage stays done (`labctl up --from deploy` resumes).
    CHECK(fs::exists(sshd.dropin_dir() / "01-labctl.conf"));
    CHECK(user.password_state() == "L");
    CHECK(test::wait_until([&] { return rsync_temps(remote, "big.bin").empty(); }, 3s));
    CHECK(test::temp_files_below(dir.path() / ".labctl").empty());
}
