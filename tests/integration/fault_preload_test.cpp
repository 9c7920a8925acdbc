// Fault case for deploy's image preload (issue 20): the target's `docker load` reads the whole
// stream and then never ends. The "target" is the loopback sshd fixture on this machine; its
// sessions get a PATH whose first directory holds a shim named `docker` (sshd's SetEnv), so
// `docker load` there is the shim while this side's `docker save` is the real Docker Engine.
// Asserted: Error(timeout) = exit 4 naming the phase "docker load", the deadline taken from
// PreloadOptions::load_timeout (lab.yaml deploy.preload_timeout), the run ends within the deadline
// plus a few seconds, the whole stream was read there, the shim's process group is gone, and no
// child (docker save) is left here.

#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <thread>

#include <labctl/core/error.hpp>
#include <labctl/core/process.hpp>
#include <labctl/deploy/compose.hpp>
#include <labctl/deploy/preload.hpp>
#include <labctl/remote/session.hpp>

#include "fault_support.hpp"
#include "skip.hpp"
#include "sshd.hpp"
#include "support.hpp"
#include "test_user.hpp"

using namespace labctl;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

using labctl::test::contains;

/// A tiny image in this machine's Docker (one file, `docker import`), removed on destruction.
struct LocalImage {
    std::string name;
    explicit LocalImage(std::string image) : name(std::move(image)) {
        test::TempDir root;
        root.write("etc/labctl-preload-test", "a file, so the image has a layer\n");
        const auto r = run_process(
            {"sh", "-c",
             fmt::format("tar -C {} -c . | docker import - {}", root.path().string(), name)},
            {.timeout = 120s});
        INFO(r.err);
        REQUIRE(r.ok());
    }
    ~LocalImage() { run_process({"docker", "image", "rm", "-f", name}, {.timeout = 60s}); }
    LocalImage(const LocalImage&) = delete;
    LocalImage& operator=(const LocalImage&) = delete;
};

void require_docker() {
    test::require_program("docker");
    if (!run_process({"docker", "info"}, {.timeout = 30s}).ok())
        test::skip("dockerd is not running (scripts/start-services starts it)");
}

bool process_alive(pid_t pid) {
    // A zombie counts as gone: it no longer runs.
    const auto [ppid, state] = test::process_parent(pid);
    return ppid != -1 && state != 'Z';
}

/// A `docker` for the target's PATH: `compose version` says v2 (for deploy's detection; the
/// plugin's `--short` prints the bare version, docker/compose@v2.24.5:cmd/compose/version.go),
/// `ps` lists no container (deploy's converge check) and `image ls` no image (so everything is
/// sent): nothing printed, exit 0, as docker/cli@v20.10.24 (cli/command/container/list.go,
/// cli/command/image/list.go) answers an empty list with --format; `load` reads all of stdin,
/// records how much
/// and its pid under `state`, then hangs (a shell loop, so the group has a parent and children).
fs::path write_docker_shim(const test::TempDir& dir, const fs::path& shim_dir,
                           const fs::path& state) {
    fs::create_directories(shim_dir);
    fs::create_directories(state);
    const auto shim = dir.write(fs::relative(shim_dir / "docker", dir.path()).string(),
                                fmt::format(R"(#!/bin/sh
case "$1" in
compose)
    echo 2.99.0
    ;;
ps | image)
    ;;
load)
    n=$(wc -c)
    echo "$n" > {0}/load.bytes
    echo $$ > {0}/load.pid
    while :; do sleep 1; done
    ;;
*)
    exit 1
    ;;
esac
)",
                                            state.string()));
    fs::permissions(shim, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
    return shim;
}

/// sshd on `address` whose sessions find `shim_dir` first in PATH.
test::SshServer::Options shim_sshd(const fs::path& shim_dir, const std::string& address) {
    return {.extra_config =
                fmt::format("SetEnv PATH={}:/usr/sbin:/usr/bin:/sbin:/bin\n", shim_dir.string()),
            .listen_address = address};
}

/// The shim's `docker load` read a stream and its process group is gone; nothing is left here.
void check_shim_ended(const fs::path& shim_dir, const fs::path& state) {
    // The shim read the whole `docker save` stream (a tar with the image's layer) first.
    REQUIRE(fs::exists(state / "load.bytes"));
    CHECK(std::stoull(test::read_file(state / "load.bytes")) > 1024);
    const pid_t shim_pid = std::stoi(test::read_file(state / "load.pid"));
    CHECK(test::wait_until([&] { return !process_alive(shim_pid); }, 3s));
    CHECK(test::wait_gone(shim_dir.string(), 3s));
}

/// A sudoers drop-in that puts `dir` first in `user`'s sudo secure_path (sudo resets PATH), so
/// `sudo docker` on the "target" is the shim; removed on destruction.
struct SudoPath {
    fs::path file;
    SudoPath(const std::string& user, const fs::path& dir)
        : file("/etc/sudoers.d/labctl-test-path-" + user) {
        std::ofstream(file) << "Defaults:" << user << " secure_path=\"" << dir.string()
                            << ":/usr/sbin:/usr/bin:/sbin:/bin\"\n";
        fs::permissions(file, fs::perms::owner_read | fs::perms::group_read);
    }
    ~SudoPath() { fs::remove(file); }
    SudoPath(const SudoPath&) = delete;
    SudoPath& operator=(const SudoPath&) = delete;
};

} // namespace

TEST_CASE("preload whose remote docker load reads the stream and hangs times out with exit 4 at "
          "its configured deadline and leaves no process behind",
          "[fault][preload]") {
    require_docker();
    test::TempDir dir;
    const auto shim_dir = dir.path() / "remote-bin";
    const auto state = dir.path() / "shim-state";
    const auto shim = write_docker_shim(dir, shim_dir, state);

    test::SshServer sshd{shim_sshd(shim_dir, "127.0.0.7")};
    remote::ConnectOptions o;
    o.endpoint = {sshd.host(), sshd.port(), sshd.user()};
    o.known_hosts = sshd.known_hosts().string();
    o.private_key = sshd.client_key().string();
    o.connect_timeout = 5s;
    o.io_timeout = 5s;
    auto session = remote::Session::connect(o);
    // The fixture's sessions really find the shim first.
    REQUIRE(session.exec("command -v docker", {.timeout = 10s}).out == shim.string() + "\n");

    const LocalImage image(fmt::format("labctl-test/preload-hang:{}", ::getpid()));
    deploy::PreloadOptions p;
    p.images = {image.name};
    p.sudo = false; // the fixture runs as this user; sudo's secure_path would hide the shim
    p.load_timeout = 3s;
    const auto t0 = Clock::now();
    try {
        deploy::preload_images(session, deploy::ComposeFacts{}, p);
        FAIL("preload returned although docker load never ended");
    } catch (const Error& e) {
        INFO(e.what());
        CHECK(e.code() == ExitCode::timeout);
        CHECK(static_cast<int>(e.code()) == 4);
        CHECK(contains(e.what(), "phase docker load"));
        CHECK(contains(e.what(), "timed out after 3.0s"));
        CHECK(contains(e.what(), image.name));
        CHECK(contains(e.what(), sshd.host()));
        CHECK(contains(e.hint(), "deploy.preload_timeout"));
    }
    const auto took = Clock::now() - t0;
    std::printf("docker load deadline 3 s: preload gave up after %.2f s\n",
                std::chrono::duration<double>(took).count());
    CHECK(took >= 3s);
    CHECK(took < 3s + 6s); // deadline + a tenth of slack + TERM, KILL after 2 s, bookkeeping

    check_shim_ended(shim_dir, state);
    CHECK(test::children_of_self().size() == 1); // the sshd listener only
    // The session survives for the next step of a deploy.
    CHECK(session.exec("echo ok", {.timeout = 10s}).out == "ok\n");
}

TEST_CASE("labctl deploy with deploy.preload_timeout: a hanging remote docker load exits 4 at that "
          "deadline naming the phase",
          "[fault][preload]") {
    require_docker();
    test::require_program("rsync");
    test::TempDir dir;
    const auto shim_dir = dir.path() / "remote-bin";
    const auto state = dir.path() / "shim-state";
    write_docker_shim(dir, shim_dir, state);
    test::TestUser user; // labctl refuses ssh.user root; deploy then runs docker through sudo
    const SudoPath sudo_path(user.name(), shim_dir);
    test::SshServer sshd{shim_sshd(shim_dir, "127.0.0.8")};
    const LocalImage image(fmt::format("labctl-test/preload-hang-cli:{}", ::getpid()));
    dir.write("stack/docker-compose.yml", "services: {}\n");
    dir.write("lab.yaml", fmt::format(R"(version: 1
project: ptest
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
deploy:
  stack_dir: stack
  remote_dir: {}/remote/stack
  preload_images: [{}]
  preload_timeout: 3s
)",
                                      user.name(), sshd.port(), sshd.client_key().string(),
                                      sshd.known_hosts().string(), sshd.host(), dir.path().string(),
                                      image.name));
    const auto t0 = Clock::now();
    const auto r =
        test::run_labctl({"deploy", "-f", (dir.path() / "lab.yaml").string()}, {.timeout = 120s});
    const auto took = Clock::now() - t0;
    std::printf("labctl deploy, preload_timeout 3s: exit %d after %.2f s\n", r.exit_code,
                std::chrono::duration<double>(took).count());
    INFO(r.err);
    CHECK(r.exit_code == 4);
    CHECK(contains(r.err, "phase docker load"));
    CHECK(contains(r.err, "timed out after 3.0s"));
    CHECK(contains(r.err, "hint:"));
    CHECK(took >= 3s);
    CHECK(took < 3s + 20s); // ssh wait, rsync and detection come first
    REQUIRE(fs::exists(state / "load.bytes"));
    CHECK(std::stoull(test::read_file(state / "load.bytes")) > 1024);
    // Through sudo (ssh.user is not root) the shim runs as root in the session sudo's use_pty
    // gives it, outside the wrapper's group: it must be ended all the same.
    const pid_t shim_pid = std::stoi(test::read_file(state / "load.pid"));
    const bool ended = test::wait_until([&] { return !process_alive(shim_pid); }, 3s);
    if (const pid_t group = ::getpgid(shim_pid); !ended && group > 1)
        ::kill(-group, SIGKILL); // so nothing outlives a failing test
    CHECK(ended);
    CHECK(test::wait_gone(shim_dir.string(), 3s));
    CHECK(test::children_of_self().size() == 1); // the sshd listener only
}
