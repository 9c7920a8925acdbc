#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include <labctl/deploy/compose.hpp>
#include <labctl/deploy/preload.hpp>
#include <labctl/deploy/sync.hpp>

using namespace labctl;

namespace {
bool has(const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
}
} // namespace

TEST_CASE("rsync mirrors the stack by content over the lab's ssh config", "[deploy]") {
    deploy::SyncOptions o;
    o.local_dir = "/src/stacks/lab";
    o.remote_dir = "/opt/labctl/lab";
    o.ssh_config = "/lab/.labctl/ssh_config";
    o.host_alias = "lab1";
    const auto argv = deploy::rsync_argv(o);
    CHECK(argv.front() == "rsync");
    CHECK(has(argv, "-az"));
    CHECK(has(argv, "--delete"));
    CHECK(has(argv, "--checksum"));
    CHECK(has(argv, "--exclude=.git/"));
    CHECK(has(argv, "--exclude=.labctl/"));
    CHECK(has(argv, "ssh -F '/lab/.labctl/ssh_config' -o ControlPath=none"));
    CHECK(has(argv, "--rsync-path=sudo -n mkdir -p '/opt/labctl/lab' && sudo -n rsync"));
    CHECK(argv[argv.size() - 2] == "/src/stacks/lab/");
    CHECK(argv.back() == "lab1:/opt/labctl/lab/");
    CHECK_FALSE(has(argv, "--dry-run"));
    o.dry_run = true;
    o.sudo = false;
    const auto dry = deploy::rsync_argv(o);
    CHECK(has(dry, "--dry-run"));
    CHECK(has(dry, "--rsync-path=mkdir -p '/opt/labctl/lab' && rsync"));
}

TEST_CASE("rsync output gives the changes, files and bytes sent", "[deploy]") {
    const std::string out = "cd+++++++++ nginx/\n"
                            ">f+++++++++ nginx/nginx.conf\n"
                            ">fcs....... docker-compose.yml\n"
                            ".d..t...... ./\n"
                            "*deleting   old.txt\n"
                            "\n"
                            "Number of files: 12 (reg: 9, dir: 3)\n"
                            "Number of regular files transferred: 2\n"
                            "Total bytes sent: 1,234\n";
    const auto r = deploy::parse_rsync_output(out);
    CHECK(r.changes.size() == 4);
    CHECK(r.changes[3] == "*deleting   old.txt");
    CHECK(r.files_transferred == 2);
    CHECK(r.bytes_sent == 1234);
    CHECK(r.total_files == 12);
}

TEST_CASE("compose up uses --wait on v2 and never removes volumes", "[deploy]") {
    deploy::ComposeOptions o;
    o.remote_dir = "/opt/labctl/lab";
    o.project = "lab";
    o.wait_timeout = std::chrono::seconds(300);
    o.env.vars = {{"IMAGE_REGISTRY", "reg.example:5000/"}};
    const auto v2 = deploy::up_command({deploy::ComposeFlavor::v2, "2.24.0"}, o).command;
    CHECK(v2 == "cd '/opt/labctl/lab' && env IMAGE_REGISTRY='reg.example:5000/' docker compose -p "
                "'lab' up -d --build --remove-orphans --wait --wait-timeout 300");
    const auto v1 = deploy::up_command({deploy::ComposeFlavor::v1, "1.29.2"}, o).command;
    CHECK(v1.find("docker-compose -p 'lab' up -d --build --remove-orphans") != std::string::npos);
    CHECK(v1.find("--wait") == std::string::npos);
    CHECK(v1.find("-v") == std::string::npos);
    CHECK(v1.find("down") == std::string::npos);
}

TEST_CASE("compose commands take secrets from stdin, never from the command line", "[deploy]") {
    deploy::ComposeEnv env;
    env.vars = {{"LAB_PINS", "current"}, {"TEMPO_VERSION", "2.8.2"}};
    env.secrets = {{"GRAFANA_ADMIN_PASSWORD", "s3cr3t 'quoted' \\x"}};
    const auto cmd = deploy::compose_command("docker compose", "/opt/lab dir", "lab", env, "ps");
    CHECK(cmd.command == "cd '/opt/lab dir' && IFS= read -r GRAFANA_ADMIN_PASSWORD && export "
                         "GRAFANA_ADMIN_PASSWORD && env LAB_PINS='current' TEMPO_VERSION='2.8.2' "
                         "docker compose -p 'lab' ps");
    CHECK(cmd.command.find("s3cr3t") == std::string::npos);
    REQUIRE(cmd.stdin_data);
    CHECK(*cmd.stdin_data == "s3cr3t 'quoted' \\x\n");

    deploy::ComposeOptions o;
    o.remote_dir = "/opt/labctl/lab";
    o.env = env;
    const auto up = deploy::up_command({deploy::ComposeFlavor::v1, "1.29.2"}, o);
    CHECK(up.command.find("s3cr3t") == std::string::npos);
    CHECK(up.stdin_data == cmd.stdin_data);

    const auto plain = deploy::compose_command("docker-compose", "/d", "p", {}, "config");
    CHECK(plain.command == "cd '/d' && docker-compose -p 'p' config");
    CHECK_FALSE(plain.stdin_data);
}

TEST_CASE("compose commands refuse a secret with a line break and a bad variable name",
          "[deploy]") {
    deploy::ComposeEnv env;
    env.secrets = {{"GRAFANA_ADMIN_PASSWORD", "one\ntwo"}};
    CHECK_THROWS_WITH(deploy::compose_command("docker compose", "/d", "p", env, "ps"),
                      Catch::Contains("line break"));
    deploy::ComposeEnv bad;
    bad.vars = {{"1BAD; rm -rf /", "x"}};
    CHECK_THROWS_WITH(deploy::compose_command("docker compose", "/d", "p", bad, "ps"),
                      Catch::Contains("not a valid compose variable name"));
}

TEST_CASE("env files read like compose's --env-file: comments, quotes, export, errors with "
          "file:line",
          "[deploy]") {
    const auto dir =
        std::filesystem::temp_directory_path() / ("labctl-envfile-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const auto good = (dir / "current.env").string();
    std::ofstream(good) << "# the current pin set\n\nLAB_PINS=current\nTEMPO_VERSION=\"2.8.2\"\n"
                           "export LOKI_VERSION='3.5.7'\nGRAFANA_VERSION=12.2.1  # newest\n";
    const auto vars = deploy::read_env_file(good);
    CHECK(vars.size() == 4);
    CHECK(vars.at("LAB_PINS") == "current");
    CHECK(vars.at("TEMPO_VERSION") == "2.8.2");
    CHECK(vars.at("LOKI_VERSION") == "3.5.7");
    CHECK(vars.at("GRAFANA_VERSION") == "12.2.1");
    const auto bad = (dir / "bad.env").string();
    std::ofstream(bad) << "A=1\nthis is not an assignment\n";
    CHECK_THROWS_WITH(deploy::read_env_file(bad), Catch::Contains(bad + ":2:"));
    CHECK_THROWS_WITH(deploy::read_env_file((dir / "missing.env").string()),
                      Catch::Contains("cannot read the env file"));
    std::filesystem::remove_all(dir);
}

TEST_CASE("service states parse from docker ps lines with and without health", "[deploy]") {
    // `docker ps -a --format '{{.ID}}\t{{.State}}\t{{.Status}}\t{{.Label ...}}'` lines as Docker
    // 20.10 (Debian 12's docker.io) prints them (status texts: moby container/state.go).
    const std::string out = "aaa1\trunning\tUp 5 minutes (healthy)\tbackend\n"
                            "bbb2\trunning\tUp 2 seconds\tweb\n"
                            "ccc3\texited\tExited (1) 3 seconds ago\tdb\n"
                            "ddd4\texited\tExited (0) 1 minute ago\tlab-init\n"
                            "eee5\trunning\tUp 4 seconds (health: starting)\tgrafana\n"
                            "fff6\trunning\tUp 9 minutes (unhealthy)\ttempo\n"
                            "ggg7\trestarting\tRestarting (137) 2 seconds ago\tloki\n";
    const auto s = deploy::parse_ps(out);
    REQUIRE(s.size() == 7);
    CHECK(s[0].health == "healthy");
    CHECK(s[0].container_id == "aaa1");
    CHECK(s[0].service == "backend");
    CHECK(s[1].service == "web");
    CHECK(s[1].health.empty());
    CHECK(s[1].serving());
    CHECK(s[2].state == "exited");
    CHECK(s[2].exit_code == 1);
    CHECK_FALSE(s[2].completed());
    CHECK_FALSE(s[2].serving());
    CHECK(s[3].completed()); // a one-shot service that did its work
    CHECK(s[3].serving());
    CHECK_FALSE(s[0].completed());
    CHECK(s[4].health == "starting");
    CHECK_FALSE(s[4].serving());
    CHECK(s[5].health == "unhealthy");
    CHECK(s[6].state == "restarting");
    CHECK(s[6].exit_code == 137);
    CHECK(deploy::parse_ps("").empty()); // no container
}

TEST_CASE("preload reads the services' images from compose config output", "[deploy][preload]") {
    // Shape of `docker-compose -p lab config` (1.29) on stacks/lab, trimmed.
    const std::string config = R"(services:
  backend:
    build:
      context: /opt/labctl/lab/app
    environment:
      OTEL_SERVICE_NAME: task-api
    image: lab/task-api:latest
    labels:
      image: not-an-image
  grafana:
    image: 'grafana/grafana:11.3.1'
  prometheus:
    image: "prom/prometheus:v2.55.1"
  second-api:
    image: lab/task-api:latest
version: '2.4'
volumes:
  data: {}
x-image:
    image: not-a-service:1
)";
    CHECK(deploy::parse_compose_images(config) ==
          std::vector<std::string>{"lab/task-api:latest", "grafana/grafana:11.3.1",
                                   "prom/prometheus:v2.55.1"});
    CHECK(deploy::parse_compose_images("services: {}\n").empty());
}

TEST_CASE("a failed compose up is explained by compose's own error line", "[deploy]") {
    // docker-compose 1.29 on a guest whose kernel enables AppArmor without apparmor_parser.
    const std::string v1 =
        "Creating lab_backend_1 ... \nCreating lab_backend_1 ... error\n\n"
        "ERROR: for lab_backend_1  Cannot start service backend: AppArmor enabled on system but "
        "the docker-default profile could not be loaded\n\n"
        "ERROR: for backend  Cannot start service backend: AppArmor enabled\n"
        "Encountered errors while bringing up the project.\n";
    CHECK(deploy::first_compose_error(v1) ==
          "Cannot start service backend: AppArmor enabled on system but the docker-default "
          "profile could not be loaded");
    CHECK(deploy::first_compose_error("Error response from daemon: pull access denied\r\n") ==
          "pull access denied");
    CHECK(deploy::first_compose_error("Creating web ... done\n").empty());
}
