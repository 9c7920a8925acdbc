// `labctl deploy` end to end: real rsync over a real sshd on loopback into a real Docker Engine
// (Debian's docker.io and docker-compose v1) on this machine. The stack's image is built from a
// local base image made with `docker import` (no registry is reachable); its port is published on
// 127.0.0.1 only.

#include <fmt/format.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include <labctl/core/error.hpp>
#include <labctl/core/process.hpp>
#include <labctl/deploy/compose.hpp>
#include <labctl/deploy/preload.hpp>
#include <labctl/remote/session.hpp>

#include "skip.hpp"
#include "sshd.hpp"
#include "test_user.hpp"

using namespace labctl;
using namespace std::chrono_literals;

namespace {

constexpr const char* k_base_image = "labctl-test/busybox:1";

// Skips unless dockerd answers; makes the offline base image once.
void require_docker() {
    test::require_program("docker");
    test::require_program("docker-compose");
    if (!run_process({"docker", "info"}, {.timeout = 30s}).ok())
        test::skip("dockerd is not running (scripts/start-services starts it)");
    if (run_process({"docker", "image", "inspect", k_base_image}).ok())
        return;
    if (!std::filesystem::exists("/bin/busybox"))
        test::skip("/bin/busybox is missing (busybox-static; scripts/install-deps installs it)");
    test::TempDir root;
    std::filesystem::create_directories(root.path() / "bin");
    std::filesystem::copy_file("/bin/busybox", root.path() / "bin" / "busybox");
    for (const char* applet : {"sh", "httpd", "wget", "sleep", "echo", "cat", "ls", "mkdir"})
        std::filesystem::create_symlink("busybox", root.path() / "bin" / applet);
    const auto r = run_process(
        {"sh", "-c",
         fmt::format("tar -C {} -c . | docker import - {}", root.path().string(), k_base_image)},
        {.timeout = 120s});
    REQUIRE(r.ok());
}

/// The lab.yaml of a deploy test: one "VM" that is the sshd fixture on `ip`, the stack in stack/.
void write_lab(const test::TempDir& dir, const test::TestUser& user, const test::SshServer& sshd,
               const std::string& ip, const std::string& project, int wait_seconds) {
    dir.write("lab.yaml", fmt::format(R"(version: 1
project: dtest
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
  project: {}
  wait_timeout: {}
)",
                                      user.name(), sshd.port(), sshd.client_key().string(),
                                      sshd.known_hosts().string(), ip, dir.path().string(), project,
                                      wait_seconds));
}

/// Test cleanup only: stops the test's containers, then removes its volume and images.
void remove_stack(const test::TempDir& dir, const std::string& project,
                  const std::vector<std::string>& images) {
    run_process({"docker-compose", "-p", project, "--project-directory",
                 (dir.path() / "remote/stack").string(), "-f",
                 (dir.path() / "remote/stack/docker-compose.yml").string(), "down",
                 "--remove-orphans"},
                {.timeout = 120s});
    run_process({"docker", "volume", "rm", "-f", project + "_data"});
    std::vector<std::string> rm{"docker", "image", "rm", "-f"};
    for (const auto& i : images)
        rm.push_back(project + "-" + i + ":latest");
    run_process(rm);
}

struct Stack {
    test::TestUser user;
    test::SshServer sshd{{.listen_address = "127.0.0.2"}};
    test::TempDir dir;
    std::string project;
    int port = test::free_port();

    explicit Stack(const std::string& healthcheck = "wget -q -O /dev/null http://127.0.0.1:8080/") {
        std::random_device rd;
        project = fmt::format("labctltest{}", rd() % 100000);
        dir.write("stack/Dockerfile",
                  fmt::format("FROM {}\nCOPY www /www\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", "
                              "\"-h\", \"/www\"]\n",
                              k_base_image));
        dir.write("stack/www/index.html", "hello from the lab\n");
        dir.write("stack/.git/HEAD", "must not be synced\n");
        dir.write("stack/docker-compose.yml", fmt::format(R"(version: "2.4"
services:
  web:
    build: .
    image: {0}-web:latest
    ports:
      - "127.0.0.1:{1}:8080"
    volumes:
      - data:/data
    healthcheck:
      test: ["CMD-SHELL", "{2}"]
      interval: 1s
      timeout: 2s
      retries: 2
volumes:
  data:
)",
                                                          project, port, healthcheck));
        write_lab(dir, user, sshd, "127.0.0.2", project, 120);
    }
    ~Stack() { remove_stack(dir, project, {"web"}); }
    std::string lab() const { return (dir.path() / "lab.yaml").string(); }
    std::filesystem::path remote() const { return dir.path() / "remote" / "stack"; }
    std::string container() const {
        return run_process({"docker", "ps", "-q", "--filter",
                            "label=com.docker.compose.project=" + project})
            .out.substr(0, 12);
    }
};

/// A network namespace of the test's own, removed on destruction.
struct NetNs {
    std::string name = fmt::format("labctltest{}", ::getpid());
    NetNs() { REQUIRE(run_process({"ip", "netns", "add", name}).ok()); }
    ~NetNs() { run_process({"ip", "netns", "delete", name}); }
    NetNs(const NetNs&) = delete;
    NetNs& operator=(const NetNs&) = delete;
};

/// A second Docker Engine with its own data root and socket: the "target" for preload tests, so
/// an image this machine's engine has is really absent there. It only stores images, so it runs
/// without a bridge, in a network namespace of its own: with --bridge=none dockerd deletes any
/// docker0 it finds, which must not be the main engine's.
struct TargetEngine {
    test::TempDir dir;
    std::string socket = (dir.path() / "docker.sock").string();
    NetNs netns;
    test::BackgroundProcess daemon;

    // nsenter, not `ip netns exec`: that remounts /sys and hides the cgroup mounts dockerd needs.
    TargetEngine()
        : daemon({"nsenter", "--net=/run/netns/" + netns.name, "dockerd", "--data-root",
                  (dir.path() / "data").string(), "--exec-root", (dir.path() / "exec").string(),
                  "-H", "unix://" + socket, "--pidfile", (dir.path() / "docker.pid").string(),
                  "--bridge=none", "--iptables=false", "--ip-masq=false", "--containerd-namespace",
                  "labctltest", "--containerd-plugins-namespace", "labctltest-plugins"},
                 (dir.path() / "dockerd.log").string()) {
        for (int i = 0; i < 150 && !docker({"info"}).ok(); ++i)
            std::this_thread::sleep_for(200ms);
        INFO(daemon.log());
        REQUIRE(docker({"info"}).ok());
    }
    ProcessResult docker(std::vector<std::string> args) const {
        args.insert(args.begin(), "docker");
        return run_process(args, {.env = {{"DOCKER_HOST", "unix://" + socket}}, .timeout = 60s});
    }
    std::string id(const std::string& image) const {
        auto r = docker({"image", "inspect", "--format", "{{.Id}}", image});
        return r.ok() ? r.out.substr(0, r.out.find('\n')) : std::string();
    }
};

/// sshd that points the target user's docker commands at the TargetEngine (SetEnv, kept by sudo).
struct PreloadTarget {
    TargetEngine engine;
    test::TestUser user;
    test::SshServer sshd{{.extra_config = "SetEnv DOCKER_HOST=unix://" + engine.socket + "\n",
                          .listen_address = "127.0.0.3"}};
    std::filesystem::path sudoers = "/etc/sudoers.d/labctl-test-env-" + user.name();

    PreloadTarget() {
        std::ofstream(sudoers) << "Defaults:" << user.name() << " env_keep += \"DOCKER_HOST\"\n";
        std::filesystem::permissions(sudoers, std::filesystem::perms::owner_read |
                                                  std::filesystem::perms::group_read);
    }
    ~PreloadTarget() { std::filesystem::remove(sudoers); }
    remote::Session connect() const {
        remote::ConnectOptions o;
        o.endpoint = {sshd.host(), sshd.port(), user.name()};
        o.known_hosts = sshd.known_hosts().string();
        o.private_key = sshd.client_key().string();
        o.connect_timeout = 5s;
        return remote::Session::connect(o);
    }
};

/// The Debian base image for the fixture stack: scripts/make-offline-base's mmdebstrap tarball,
/// imported once into the local Docker (cached there by its name, which carries the input hash).
std::string require_runtime_base() {
    require_docker();
    const auto r =
        run_process({std::string(LABCTL_SOURCE_DIR) + "/scripts/make-offline-base", "--cached"});
    if (!r.ok())
        test::skip("the Debian base rootfs is not built yet (scripts/make-offline-base; "
                   "scripts/test runs it)");
    const std::filesystem::path tar = r.out.substr(0, r.out.find('\n'));
    const auto stem = tar.stem().string(); // bookworm-offline-<key>
    const auto image =
        "labctl-test/" + stem.substr(0, stem.rfind('-')) + ":" + stem.substr(stem.rfind('-') + 1);
    if (!run_process({"docker", "image", "inspect", image}).ok())
        REQUIRE(run_process({"docker", "import", tar.string(), image}, {.timeout = 300s}).ok());
    return image;
}

/// tests/fixtures/stack-mini (the task API behind Debian's nginx) as a lab: deployed through the
/// sshd fixture into this machine's Docker Engine.
struct MiniStack {
    test::TestUser user;
    test::SshServer sshd{{.listen_address = "127.0.0.5"}};
    test::TempDir dir;
    std::string project;
    int port = test::free_port();

    explicit MiniStack(const std::string& base) {
        std::random_device rd;
        project = fmt::format("labctlmini{}", rd() % 100000);
        const auto stack = dir.path() / "stack";
        std::filesystem::copy(std::string(LABCTL_SOURCE_DIR) + "/tests/fixtures/stack-mini", stack,
                              std::filesystem::copy_options::recursive);
        std::filesystem::copy_file(LABCTL_TASKAPI_BINARY, stack / "labctl-taskapi");
        dir.write("stack/.env",
                  fmt::format("BASE_IMAGE={}\nPREFIX={}\nWEB_PORT={}\n", base, project, port));
        write_lab(dir, user, sshd, "127.0.0.5", project, 180);
    }
    ~MiniStack() { remove_stack(dir, project, {"api", "web"}); }
    std::string lab() const { return (dir.path() / "lab.yaml").string(); }
    std::string url(const std::string& path) const {
        return fmt::format("http://127.0.0.1:{}{}", port, path);
    }
    ProcessResult deploy() const {
        return test::run_labctl({"deploy", "-f", lab(), "--output", "json"}, {.timeout = 400s});
    }
};

} // namespace

TEST_CASE("deploy syncs the stack, brings it up healthy, and a second deploy sends nothing",
          "[deploy]") {
    require_docker();
    Stack stack;
    const auto first =
        test::run_labctl({"deploy", "-f", stack.lab(), "--output", "json"}, {.timeout = 300s});
    INFO(first.err);
    REQUIRE(first.exit_code == 0);
    const auto j = nlohmann::json::parse(first.out);
    CHECK(j["sync"]["files_transferred"].get<int>() >= 3);
    CHECK(j["compose"]["flavor"] == "docker-compose");
    REQUIRE(j["compose"]["services"].size() == 1);
    CHECK(j["compose"]["services"][0]["health"] == "healthy");
    CHECK_FALSE(std::filesystem::exists(stack.remote() / ".git"));
    const auto page =
        run_process({"curl", "-fsS", fmt::format("http://127.0.0.1:{}/index.html", stack.port)});
    CHECK(page.out == "hello from the lab\n");

    // Data in the named volume must survive a redeploy.
    REQUIRE(
        run_process({"docker", "exec", stack.container(), "sh", "-c", "echo keep > /data/marker"})
            .ok());
    const auto second =
        test::run_labctl({"deploy", "-f", stack.lab(), "--output", "json"}, {.timeout = 300s});
    INFO(second.err);
    REQUIRE(second.exit_code == 0);
    const auto j2 = nlohmann::json::parse(second.out);
    CHECK(j2["sync"]["files_transferred"] == 0);
    CHECK(j2["sync"]["changes"].empty());
    CHECK(run_process({"docker", "exec", stack.container(), "cat", "/data/marker"}).out ==
          "keep\n");
    // Nothing changed on either side: the converge check proves it, nothing is synced or
    // restarted (the same container still runs).
    CHECK(j2["converge"]["result"] == "unchanged");
    CHECK(j2["converge"]["drift"].empty());
    CHECK(j2["sync"]["skipped"] == true);
    CHECK(j2["compose"]["skipped"] == true);
    REQUIRE(j2["compose"]["services"].size() == 1);
    CHECK(j2["compose"]["services"][0]["health"] == "healthy");
}

namespace {

/// `labctl deploy --output json` on the stack; requires exit 0.
nlohmann::json deploy_json(const Stack& stack, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"deploy", "-f", stack.lab(), "--output", "json"};
    args.insert(args.end(), extra.begin(), extra.end());
    const auto r = test::run_labctl(args, {.timeout = 300s});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return nlohmann::json::parse(r.out);
}

bool drift_says(const nlohmann::json& j, const std::string& words) {
    for (const auto& d : j["converge"]["drift"])
        if (test::contains(d.get<std::string>(), words))
            return true;
    return false;
}

} // namespace

TEST_CASE("each kind of drift is detected and repaired by a full deploy, and the deploy after the "
          "repair changes nothing",
          "[deploy][converge]") {
    require_docker();
    Stack stack;
    REQUIRE(deploy_json(stack)["converge"]["result"] == "applied");
    const auto record = stack.remote() / ".labctl" / "deployed.json";
    REQUIRE(std::filesystem::exists(record));
    CHECK((std::filesystem::status(record).permissions() & std::filesystem::perms::all) ==
          (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
    const auto running = [&] {
        return run_process(
                   {"docker", "inspect", "--format", "{{.State.Status}}", stack.container()})
            .out;
    };

    struct Case {
        std::string name;
        std::function<void()> cause;
        std::string drift;              // the sentence that names it
        std::function<void()> repaired; // asserts the repair
    };
    const std::vector<Case> cases{
        {"a file edited on the target",
         [&] { stack.dir.write("remote/stack/www/index.html", "edited by hand\n"); },
         "were changed on the target",
         [&] {
             CHECK(test::read_file(stack.remote() / "www/index.html") == "hello from the lab\n");
         }},
        {"a file added on the target",
         [&] { stack.dir.write("remote/stack/www/extra.html", "stray\n"); },
         "were changed on the target",
         [&] {
             CHECK_FALSE(std::filesystem::exists(stack.remote() / "www/extra.html"));
         }},
        {"a file changed here", [&] { stack.dir.write("stack/www/index.html", "new content\n"); },
         "the stack directory changed here",
         [&] {
             CHECK(test::read_file(stack.remote() / "www/index.html") == "new content\n");
         }},
        {"a stopped container",
         [&] {
             REQUIRE(run_process({"docker", "stop", "-t", "1", stack.container()}).ok());
         },
         "service web exited with status",
         [&] {
             CHECK(running() == "running\n");
         }},
        {"a removed container",
         [&] {
             REQUIRE(run_process({"docker", "rm", "-f", stack.container()}).ok());
         },
         "service web has no container",
         [&] {
             CHECK(running() == "running\n");
         }},
        {"changed compose variables",
         [&] {
             stack.dir.write("stack/pins/current.env", "TEMPO_VERSION=1.2.3\n");
             std::ofstream(stack.lab(), std::ios::app) << "  pins: current\n";
         },
         "the compose variables or secrets changed",
         [] {
         }},
        {"a deleted record", [&] { std::filesystem::remove(record); },
         "no record of an earlier deploy",
         [&] {
             CHECK(std::filesystem::exists(record));
         }},
        {"a corrupt record", [&] { std::ofstream(record) << "{\"format\": 1, \"tree\": "; },
         "unreadable",
         [&] {
             CHECK(nlohmann::json::parse(test::read_file(record))["format"] == 1);
         }},
    };
    for (const auto& c : cases) {
        CAPTURE(c.name);
        c.cause();
        const auto fixed = deploy_json(stack);
        INFO(fixed["converge"].dump());
        CHECK(fixed["converge"]["result"] == "applied");
        CHECK(drift_says(fixed, c.drift));
        c.repaired();
        const auto again = deploy_json(stack);
        INFO(again["converge"].dump());
        CHECK(again["converge"]["result"] == "unchanged");
    }
    // --force runs the whole deploy without drift.
    const auto forced = deploy_json(stack, {"--force"});
    CHECK(forced["converge"]["result"] == "applied");
    CHECK(forced["converge"]["drift"].empty());
    CHECK(forced["compose"].value("skipped", false) == false);
}

namespace {

/// A stack from a ready image (no build): web serves a file it bind-mounts by itself; conf reads
/// a file of a directory it mounts again on SIGHUP (its labctl.reload); idle mounts nothing.
struct MountStack {
    test::TestUser user;
    test::SshServer sshd{{.listen_address = "127.0.0.6"}};
    test::TempDir dir;
    std::string project;
    int port = test::free_port();

    MountStack() {
        std::random_device rd;
        project = fmt::format("labctlmount{}", rd() % 100000);
        dir.write("stack/www/index.html", "first\n");
        dir.write("stack/README.md", "not mounted\n");
        dir.write("stack/conf/value", "one\n");
        dir.write("stack/docker-compose.yml", fmt::format(R"(version: "2.4"
services:
  web:
    image: {0}
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports:
      - "127.0.0.1:{1}:8080"
    labels:
      labctl.reload: SIGHUP
    volumes:
      - ./www/index.html:/www/index.html:ro
    healthcheck:
      test: ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/index.html"]
      interval: 1s
      timeout: 2s
      retries: 2
  conf:
    image: {0}
    command: ["sh", "-c", "trap 'cat /conf/value > /seen' HUP; cat /conf/value > /seen; while :; do sleep 1 & wait $$!; done"]
    labels:
      labctl.reload: SIGHUP
    volumes:
      - ./conf:/conf:ro
  idle:
    image: {0}
    command: ["sleep", "100000"]
    init: true
)",
                                                          k_base_image, port));
        write_lab(dir, user, sshd, "127.0.0.6", project, 120);
    }
    ~MountStack() { remove_stack(dir, project, {}); }
    std::string lab() const { return (dir.path() / "lab.yaml").string(); }
    nlohmann::json deploy() const {
        const auto r =
            test::run_labctl({"deploy", "-f", lab(), "--output", "json"}, {.timeout = 300s});
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
        return nlohmann::json::parse(r.out);
    }
    std::string page() const {
        return run_process({"curl", "-fsS", fmt::format("http://127.0.0.1:{}/index.html", port)})
            .out;
    }
    /// What the conf service read last (it reads again on SIGHUP, in the background).
    std::string conf_seen(const std::string& want) const {
        std::string seen;
        for (int i = 0; i < 50 && seen != want; ++i) {
            if (i > 0)
                std::this_thread::sleep_for(100ms);
            seen = run_process({"docker", "exec", container("conf"), "cat", "/seen"}).out;
        }
        return seen;
    }
    std::string container(const std::string& service) const {
        const auto id = run_process({"docker", "ps", "-q", "--filter",
                                     "label=com.docker.compose.project=" + project, "--filter",
                                     "label=com.docker.compose.service=" + service})
                            .out;
        return id.substr(0, id.find('\n'));
    }
    /// The service's container id and when it last started.
    std::string started(const std::string& service) const {
        const auto id = container(service);
        REQUIRE_FALSE(id.empty());
        return run_process({"docker", "inspect", "--format", "{{.Id}} {{.State.StartedAt}}", id})
            .out;
    }
};

} // namespace

TEST_CASE("a changed file that a service mounts is served after the deploy: that service alone "
          "restarts, without compose up",
          "[deploy][converge]") {
    require_docker();
    MountStack stack;
    const auto first = stack.deploy();
    CHECK(first["converge"]["mode"] == "full");
    CHECK(stack.page() == "first\n");
    const auto web = stack.started("web");
    const auto idle = stack.started("idle");

    // rsync replaces the file (a new inode); the running container would go on serving the old.
    stack.dir.write("stack/www/index.html", "second\n");
    const auto changed = stack.deploy();
    INFO(changed.dump());
    CHECK(changed["converge"]["result"] == "applied");
    CHECK(changed["converge"]["mode"] == "files");
    CHECK(changed["sync"]["files_transferred"] == 1);
    CHECK(changed["compose"]["skipped"] == true);
    CHECK(changed["preload"]["skipped"] == true);
    // web has a reload signal, but its file is mounted by itself: only a restart mounts the new
    // inode.
    CHECK(changed["compose"]["restarted"] == nlohmann::json::array({"web"}));
    CHECK(changed["compose"]["reloaded"].empty());
    CHECK(stack.page() == "second\n");
    const auto web_after = stack.started("web");
    CHECK(web_after.substr(0, 64) == web.substr(0, 64)); // the same container, restarted
    CHECK(web_after != web);
    CHECK(stack.started("idle") == idle); // untouched
    CHECK(stack.deploy()["converge"]["result"] == "unchanged");

    // A file no service mounts: synced, nothing restarted.
    stack.dir.write("stack/README.md", "still not mounted\n");
    const auto readme = stack.deploy();
    CHECK(readme["converge"]["mode"] == "files");
    CHECK(readme["compose"]["restarted"].empty());
    CHECK(stack.started("web") == web_after);
    CHECK(stack.deploy()["converge"]["result"] == "unchanged");

    // A file under a directory conf mounts: its reload signal, no restart.
    const auto conf = stack.started("conf");
    CHECK(stack.conf_seen("one\n") == "one\n");
    stack.dir.write("stack/conf/value", "two\n");
    const auto reload = stack.deploy();
    INFO(reload.dump());
    CHECK(reload["converge"]["mode"] == "files");
    CHECK(reload["compose"]["reloaded"] == nlohmann::json::array({"conf"}));
    CHECK(reload["compose"]["restarted"].empty());
    CHECK(stack.conf_seen("two\n") == "two\n");
    CHECK(stack.started("conf") == conf);
    CHECK(stack.started("web") == web_after);
    CHECK(stack.deploy()["converge"]["result"] == "unchanged");
}

TEST_CASE("a full deploy restarts a service whose mounted file changed when compose keeps its "
          "container",
          "[deploy][converge]") {
    require_docker();
    MountStack stack;
    stack.deploy();
    const auto idle = stack.started("idle");
    // Other variables (compose's inputs) and the mounted file: the full deploy runs, and compose
    // leaves both containers as they are (their configuration did not change).
    stack.dir.write("stack/pins/current.env", "UNUSED_BY_THE_STACK=1\n");
    std::ofstream(stack.lab(), std::ios::app) << "  pins: current\n";
    stack.dir.write("stack/www/index.html", "third\n");
    const auto j = stack.deploy();
    INFO(j.dump());
    CHECK(j["converge"]["mode"] == "full");
    CHECK(j["compose"]["skipped"] == false);
    CHECK(j["compose"]["restarted"] == nlohmann::json::array({"web"}));
    CHECK(stack.page() == "third\n");
    CHECK(stack.started("idle") == idle);
}

TEST_CASE("deploy --dry-run names the drift it would repair and changes nothing",
          "[deploy][converge]") {
    require_docker();
    Stack stack;
    REQUIRE(deploy_json(stack)["converge"]["result"] == "applied");
    const auto id = stack.container();
    REQUIRE(run_process({"docker", "stop", "-t", "1", id}).ok());
    const auto dry = test::run_labctl({"deploy", "--dry-run", "-f", stack.lab()});
    INFO(dry.err);
    CHECK(dry.exit_code == 0);
    CHECK(test::contains(dry.out, "drift: service web exited with status"));
    CHECK(run_process({"docker", "inspect", "--format", "{{.State.Status}}", id}).out ==
          "exited\n");
}

TEST_CASE("deploy passes the pin set's variables and a generated Grafana password that is never "
          "printed and stays the same",
          "[deploy][secrets]") {
    require_docker();
    Stack stack;
    // The stack names the variables the lab stack uses: compose interpolates them into the env.
    auto compose = test::read_file(stack.dir.path() / "stack/docker-compose.yml");
    const std::string marker = "    build: .\n";
    compose.insert(compose.find(marker) + marker.size(),
                   "    environment:\n"
                   "      ADMIN_PASSWORD: ${GRAFANA_ADMIN_PASSWORD:-missing}\n"
                   "      PINS: ${LAB_PINS:-none}\n"
                   "      TEMPO: ${TEMPO_VERSION:-2.3.1}\n");
    stack.dir.write("stack/docker-compose.yml", compose);
    stack.dir.write("stack/pins/current.env",
                    "# test pins\nLAB_PINS=current\nTEMPO_VERSION=9.9.9\n");
    auto lab = test::read_file(stack.lab());
    stack.dir.write("lab.yaml", lab + "  pins: current\n");

    // A dry run changes nothing here either: no secret is generated.
    const auto dry = test::run_labctl({"deploy", "--dry-run", "-f", stack.lab()});
    INFO(dry.err);
    CHECK(dry.exit_code == 0);
    CHECK_FALSE(std::filesystem::exists(stack.dir.path() / ".labctl" / "grafana-admin-password"));

    const auto first = test::run_labctl({"deploy", "-vv", "-f", stack.lab()}, {.timeout = 300s});
    INFO(first.err);
    REQUIRE(first.exit_code == 0);
    const auto file = stack.dir.path() / ".labctl" / "grafana-admin-password";
    REQUIRE(std::filesystem::exists(file));
    const auto mode = std::filesystem::status(file).permissions() & std::filesystem::perms::all;
    CHECK(mode == (std::filesystem::perms::owner_read | std::filesystem::perms::owner_write));
    std::string password = test::read_file(file);
    REQUIRE(password.size() == 33); // 32 base64url characters and a newline
    password.pop_back();
    const auto env = run_process({"docker", "inspect", "--format",
                                  "{{range .Config.Env}}{{println .}}{{end}}", stack.container()});
    CHECK(env.out.find("ADMIN_PASSWORD=" + password + "\n") != std::string::npos);
    CHECK(env.out.find("PINS=current\n") != std::string::npos);
    CHECK(env.out.find("TEMPO=9.9.9\n") != std::string::npos);
    CHECK(first.out.find(password) == std::string::npos);
    CHECK(first.err.find(password) == std::string::npos);
    // Nothing on the target holds it but the container's config.
    const auto grep = run_process({"grep", "-rl", password, stack.remote().string()});
    CHECK(grep.out.empty());

    const auto second = test::run_labctl({"deploy", "-f", stack.lab()}, {.timeout = 300s});
    INFO(second.err);
    REQUIRE(second.exit_code == 0);
    CHECK(test::read_file(file) == password + "\n");
}

TEST_CASE("deploy sets the generated password inside a running grafana service through its CLI, "
          "the password on stdin",
          "[deploy][secrets]") {
    require_docker();
    Stack stack;
    // A stand-in for grafana/grafana's `grafana cli admin reset-admin-password
    // --password-from-stdin`: it records the line it reads from stdin.
    const auto cli =
        stack.dir.write("stack/grafana/grafana", "#!/bin/sh\n"
                                                 "[ \"$*\" = \"cli admin reset-admin-password "
                                                 "--password-from-stdin\" ] || exit 64\n"
                                                 "IFS= read -r pw || exit 65\n"
                                                 "echo \"$pw\" > /data/admin-password\n"
                                                 "echo 'Admin password changed successfully'\n");
    std::filesystem::permissions(
        cli, std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
                 std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
                 std::filesystem::perms::others_exec);
    stack.dir.write("stack/grafana/Dockerfile",
                    fmt::format("FROM {}\nCOPY grafana /bin/grafana\nCMD [\"sleep\", \"3600\"]\n",
                                k_base_image));
    auto compose = test::read_file(stack.dir.path() / "stack/docker-compose.yml");
    const std::string volumes = "volumes:\n  data:\n";
    compose.replace(
        compose.rfind(volumes), volumes.size(),
        fmt::format("  grafana:\n    build: grafana\n    image: {}-grafana:latest\n"
                    "    environment:\n"
                    "      GF_SECURITY_ADMIN_PASSWORD: ${{GRAFANA_ADMIN_PASSWORD:-unset}}\n"
                    "    volumes:\n      - gdata:/data\n{}  gdata:\n",
                    stack.project, volumes));
    stack.dir.write("stack/docker-compose.yml", compose);
    const auto r = test::run_labctl({"deploy", "-f", stack.lab()}, {.timeout = 300s});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const auto password = test::read_file(stack.dir.path() / ".labctl" / "grafana-admin-password");
    const auto id = run_process({"docker", "ps", "-q", "--filter",
                                 "label=com.docker.compose.project=" + stack.project, "--filter",
                                 "label=com.docker.compose.service=grafana"})
                        .out.substr(0, 12);
    CHECK(run_process({"docker", "exec", id, "cat", "/data/admin-password"}).out == password);
    CHECK(r.err.find(password.substr(0, 32)) == std::string::npos);
    run_process({"docker", "rm", "-f", id});
    run_process({"docker", "volume", "rm", "-f", stack.project + "_gdata"});
    run_process({"docker", "image", "rm", "-f", stack.project + "-grafana:latest"});
}

TEST_CASE("a one-shot service that exits 0 counts as done, one that exits 3 fails the deploy "
          "with exit 7 naming its status",
          "[deploy][oneshot]") {
    require_docker();
    for (const int status : {0, 3}) {
        CAPTURE(status);
        Stack stack;
        auto compose = test::read_file(stack.dir.path() / "stack/docker-compose.yml");
        // lab-init's shape in stacks/lab: runs once before the others, restart "no".
        const std::string web = "  web:\n    build: .\n";
        compose.replace(compose.find(web), web.size(),
                        fmt::format("  init:\n    image: {}\n    command: [\"sh\", \"-c\", "
                                    "\"echo prepared; exit {}\"]\n    restart: \"no\"\n"
                                    "{}    depends_on:\n      init:\n        condition: "
                                    "service_completed_successfully\n",
                                    k_base_image, status, web));
        stack.dir.write("stack/docker-compose.yml", compose);
        const auto r =
            test::run_labctl({"deploy", "-f", stack.lab(), "--output", "json"}, {.timeout = 300s});
        INFO(r.err);
        if (status == 0) {
            REQUIRE(r.exit_code == 0);
            const auto j = nlohmann::json::parse(r.out);
            CHECK(j["compose"]["services"].size() == 2);
        } else {
            CHECK(r.exit_code == 7);
            CHECK(r.err.find("init") != std::string::npos);
        }
    }
}

TEST_CASE("deploy --host and LAB_HOST take the documented USER@HOST:PORT form", "[deploy][host]") {
    require_docker();
    Stack stack;
    const auto host = fmt::format("{}@127.0.0.2:{}", stack.user.name(), stack.sshd.port());
    const auto flag = test::run_labctl({"deploy", "--dry-run", "--host", host, "-f", stack.lab()});
    INFO(flag.err);
    CHECK(flag.exit_code == 0);
    CHECK(flag.out.find("www/index.html") != std::string::npos);
    const auto env =
        test::run_labctl({"deploy", "--dry-run", "-f", stack.lab()}, {.env = {{"LAB_HOST", host}}});
    INFO(env.err);
    CHECK(env.exit_code == 0);
    CHECK(env.out.find("www/index.html") != std::string::npos);
}

TEST_CASE("deploy --dry-run lists what would change and changes nothing", "[deploy]") {
    require_docker();
    Stack stack;
    const auto first = test::run_labctl({"deploy", "-f", stack.lab()}, {.timeout = 300s});
    INFO(first.err);
    REQUIRE(first.exit_code == 0);
    stack.dir.write("stack/www/index.html", "changed locally\n");
    const auto dry = test::run_labctl({"deploy", "--dry-run", "-f", stack.lab()});
    INFO(dry.err);
    CHECK(dry.exit_code == 0);
    CHECK(dry.out.find("www/index.html") != std::string::npos);
    CHECK(test::read_file(stack.remote() / "www" / "index.html") == "hello from the lab\n");
}

TEST_CASE("a service that never gets healthy fails the deploy with exit 7 and saved evidence",
          "[deploy]") {
    require_docker();
    Stack stack("exit 1");
    const auto r = test::run_labctl({"deploy", "-f", stack.lab()}, {.timeout = 300s});
    CHECK(r.exit_code == 7);
    CHECK(r.err.find("service web is unhealthy") != std::string::npos);
    const auto reports = stack.dir.path() / ".labctl" / "reports";
    REQUIRE(std::filesystem::exists(reports));
    std::filesystem::path evidence;
    for (const auto& e : std::filesystem::directory_iterator(reports))
        evidence = e.path();
    REQUIRE_FALSE(evidence.empty());
    const auto ps = nlohmann::json::parse(test::read_file(evidence / "ps.json"));
    CHECK(ps[0]["service"] == "web");
    CHECK(ps[0]["health"] == "unhealthy");
    CHECK(std::filesystem::exists(evidence / "web.log"));
}

TEST_CASE("preload streams an image the target lacks once and skips it the second time",
          "[deploy][preload]") {
    require_docker();
    PreloadTarget target;
    REQUIRE(target.engine.id(k_base_image).empty());
    // (The main engine's bridge is untouched; checked at the end.)
    const bool had_docker0 = run_process({"ip", "link", "show", "docker0"}).ok();
    auto session = target.connect();
    REQUIRE(session.exec("docker info --format '{{.Name}}'", {.sudo = true}).ok());
    const auto facts = deploy::detect_compose(session, true);

    // "auto": the images the synced compose file names, read by `compose config` on the target.
    test::TempDir remote;
    remote.write("docker-compose.yml", fmt::format(R"(version: "2.4"
services:
  app:
    image: ${{BASE_IMAGE}}
  built-here:
    build: .
    image: labctl-test/not-built-anywhere:1
)"));
    deploy::PreloadOptions o;
    o.images = {"auto"};
    o.remote_dir = remote.path().string();
    o.project = "labctlpreload";
    o.env.vars = {{"BASE_IMAGE", k_base_image}};
    const auto first = deploy::preload_images(session, facts, o);
    REQUIRE(first.images.size() == 2);
    CHECK(first.images[0].image == k_base_image);
    CHECK(first.images[0].action == deploy::PreloadAction::sent);
    CHECK(first.bytes_sent > 1'000'000); // busybox-static alone is ~2 MB
    CHECK(first.images[1].action == deploy::PreloadAction::missing_locally);
    const auto local_id =
        run_process({"docker", "image", "inspect", "--format", "{{.Id}}", k_base_image}).out;
    CHECK(target.engine.id(k_base_image) + "\n" == local_id);

    const auto second = deploy::preload_images(session, facts, o);
    REQUIRE(second.images.size() == 2);
    CHECK(second.images[0].action == deploy::PreloadAction::present);
    CHECK(second.bytes_sent == 0);

    // An image listed by name that this machine lacks is an error, not a silent skip.
    o.images = {"labctl-test/not-built-anywhere:1"};
    try {
        deploy::preload_images(session, facts, o);
        FAIL("a missing listed image was accepted");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::deploy);
        CHECK(std::string(e.what()).find("not-built-anywhere") != std::string::npos);
    }
    CHECK(run_process({"ip", "link", "show", "docker0"}).ok() == had_docker0);
}

TEST_CASE("preload leaves out the layers the target already has: an image rebuilt on the same "
          "base sends its new layer only, and loads with the same id",
          "[deploy][preload]") {
    require_docker();
    PreloadTarget target;
    auto session = target.connect();
    const auto facts = deploy::detect_compose(session, true);
    // Two images on the busybox base: the target gets the first whole, then only what the
    // second adds.
    std::random_device rd;
    const auto tag = fmt::format("{}", rd() % 100000);
    const std::string first_image = "labctl-test/layers-a:" + tag;
    const std::string second_image = "labctl-test/layers-b:" + tag;
    test::TempDir ctx;
    ctx.write("a.txt", std::string(300'000, 'a'));
    ctx.write("b.txt", std::string(200'000, 'b'));
    ctx.write("Dockerfile.a", fmt::format("FROM {}\nCOPY a.txt /a.txt\n", k_base_image));
    ctx.write("Dockerfile.b", fmt::format("FROM {}\nCOPY b.txt /b.txt\n", k_base_image));
    for (const auto& [file, image] :
         {std::pair{"Dockerfile.a", first_image}, std::pair{"Dockerfile.b", second_image}})
        REQUIRE(run_process({"docker", "build", "-q", "-f", (ctx.path() / file).string(), "-t",
                             image, ctx.path().string()},
                            {.timeout = 120s})
                    .ok());
    struct Cleanup {
        std::vector<std::string> images;
        ~Cleanup() {
            for (const auto& i : images)
                run_process({"docker", "image", "rm", "-f", i});
        }
    } cleanup{{first_image, second_image}};
    const auto whole = run_process({"sh", "-c", "docker save " + second_image + " | wc -c"});
    const auto whole_bytes = std::stoull(whole.out);

    test::TempDir work;
    deploy::PreloadOptions o;
    o.images = {first_image};
    o.work_dir = work.path().string();
    const auto first = deploy::preload_images(session, facts, o);
    CHECK(first.images.at(0).action == deploy::PreloadAction::sent);
    CHECK(first.bytes_skipped == 0);

    o.images = {second_image};
    const auto second = deploy::preload_images(session, facts, o);
    REQUIRE(second.images.at(0).action == deploy::PreloadAction::sent);
    INFO("whole archive " << whole_bytes << ", sent " << second.bytes_sent << ", left out "
                          << second.bytes_skipped);
    // The base layer (busybox-static, ~2 MB) stays home; b.txt's layer goes.
    CHECK(second.bytes_skipped > 1'000'000);
    CHECK(second.bytes_sent > 200'000);
    CHECK(second.bytes_sent + second.bytes_skipped == whole_bytes);
    // preload_images compares the ids after loading; the file itself is here too:
    CHECK(target.engine.id(second_image) ==
          run_process({"docker", "image", "inspect", "--format", "{{.Id}}", second_image})
              .out.substr(0, 71));
    CHECK(target.engine.docker({"run", "--rm", "--network", "none", second_image, "ls", "/b.txt"})
              .ok());
    // The saved archive is gone.
    CHECK(std::filesystem::is_empty(work.path()));
}

TEST_CASE("deploy with preload_images auto reports the stack's image and then finds it present",
          "[deploy][preload]") {
    require_docker();
    Stack stack;
    {
        auto yaml = test::read_file(stack.lab());
        yaml += "  preload_images: auto\n";
        std::ofstream(stack.lab()) << yaml;
    }
    // First deploy: the image is built by compose on the target, so it is missing locally.
    const auto first =
        test::run_labctl({"deploy", "-f", stack.lab(), "--output", "json"}, {.timeout = 300s});
    INFO(first.err);
    REQUIRE(first.exit_code == 0);
    const auto j1 = nlohmann::json::parse(first.out);
    REQUIRE(j1["preload"]["images"].size() == 1);
    CHECK(j1["preload"]["images"][0]["action"] == "missing locally");
    // Second deploy: the image the first one built is now in this machine's Docker too (the
    // target and this machine share the engine here), which is drift: the image list comes from
    // the record (the compose inputs did not change, no `compose config`), the ids match.
    const auto second =
        test::run_labctl({"deploy", "-f", stack.lab(), "--output", "json"}, {.timeout = 300s});
    INFO(second.err);
    REQUIRE(second.exit_code == 0);
    const auto j2 = nlohmann::json::parse(second.out);
    CHECK(j2["converge"]["result"] == "applied");
    CHECK(drift_says(j2, "changed here (missing → "));
    REQUIRE(j2["preload"]["images"].size() == 1);
    CHECK(j2["preload"]["images"][0]["action"] == "present");
    CHECK(j2["preload"]["bytes_sent"] == 0);
    // Third: nothing changed on either side.
    CHECK(deploy_json(stack)["converge"]["result"] == "unchanged");
    CHECK(test::contains(second.err, "the images the last deploy's compose config named"));
}

TEST_CASE("deploy runs the task API behind nginx from locally built images, and a redeploy of "
          "one changed file keeps the tasks in the named volume",
          "[deploy][stack]") {
    const auto base = require_runtime_base();
    MiniStack stack(base);
    const auto first = stack.deploy();
    INFO(first.err);
    REQUIRE(first.exit_code == 0);
    const auto j = nlohmann::json::parse(first.out);
    REQUIRE(j["compose"]["services"].size() == 2);
    for (const auto& s : j["compose"]["services"]) {
        CHECK(s["state"] == "running");
        CHECK(s["health"] == "healthy"); // v1 poll: every service healthy before exit 0
    }
    const auto created =
        run_process({"curl", "-fsS", "-H", "Content-Type: application/json", "-d",
                     R"({"title":"survives redeploys"})", stack.url("/api/tasks")});
    INFO(created.err);
    REQUIRE(created.ok());
    const auto task = nlohmann::json::parse(created.out);
    CHECK(task["title"] == "survives redeploys");

    // One changed file: exactly one file goes over, compose rebuilds nginx's image and recreates
    // it, the API's container and its volume stay.
    auto conf = test::read_file(stack.dir.path() / "stack" / "nginx.conf");
    conf.insert(0, "# changed for the redeploy test\n");
    stack.dir.write("stack/nginx.conf", conf);
    const auto second = stack.deploy();
    INFO(second.err);
    REQUIRE(second.exit_code == 0);
    const auto j2 = nlohmann::json::parse(second.out);
    CHECK(j2["sync"]["files_transferred"] == 1);
    const auto listed = run_process({"curl", "-fsS", stack.url("/api/tasks")});
    REQUIRE(listed.ok());
    const auto tasks = nlohmann::json::parse(listed.out)["tasks"];
    REQUIRE(tasks.size() == 1);
    CHECK(tasks[0]["id"] == task["id"]);
    CHECK(tasks[0]["title"] == "survives redeploys");
}
