// `labctl verify` (and `labctl up`'s verify stage and URLs) on a lab whose VM sits behind a jump
// host (issue #15 §2): real services — the task API, nginx in front of it, Debian's Prometheus
// scraping it — at the "VM" address 127.0.0.2, which only the jump host's login user may reach
// (tests/support/jump_lab.hpp: a network namespace of the test's own, where a firewall rule
// rejects every other connection to 127.0.0.2). verify passes only through its local forwards;
// with ssh.jump: none it fails, naming the address it could not reach.

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include <labctl/core/process.hpp>
#include <labctl/verify/http.hpp>

#include "background.hpp"
#include "jump_lab.hpp"
#include "skip.hpp"
#include "support.hpp"

using namespace labctl;
using namespace std::chrono_literals;
using labctl::test::BackgroundProcess;
using labctl::test::enter_private_netns;
using labctl::test::JumpHostFixture;
namespace fs = std::filesystem;

namespace {

using labctl::test::contains;

std::string taskapi_binary() {
#ifdef LABCTL_TASKAPI_BINARY
    return LABCTL_TASKAPI_BINARY;
#else
    return {};
#endif
}

bool wait_http_ok(const std::string& url, std::chrono::seconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (verify::http_get(url, 1s).status == 200)
            return true;
        std::this_thread::sleep_for(100ms);
    }
    return false;
}

/// The "VM": the task API on every address of the namespace (:5000), nginx on 127.0.0.2:8080 in
/// front of it, Prometheus on 127.0.0.2:9090 scraping it as job task-api. Readiness is probed on
/// 127.0.0.1, which the rule leaves open (the API), or through the services' own logs.
struct Vm {
    test::TempDir dir;
    std::unique_ptr<BackgroundProcess> api, nginx, prometheus;

    Vm() {
        const auto api_bin = taskapi_binary();
        if (api_bin.empty() || !fs::exists(api_bin))
            test::skip("labctl-taskapi is not built (app/ needs its dependencies)");
        const auto nginx_bin = find_program("nginx");
        const auto prom_bin = find_program("prometheus");
        if (!nginx_bin || !prom_bin)
            test::skip("nginx and prometheus are needed (scripts/install-deps installs them)");

        api = std::make_unique<BackgroundProcess>(
            std::vector<std::string>{"env", "HOST=0.0.0.0", "PORT=5000",
                                     "DB_PATH=" + (dir.path() / "tasks.db").string(),
                                     "OTEL_SDK_DISABLED=true", api_bin},
            dir.path() / "taskapi.log");
        REQUIRE(wait_http_ok("http://127.0.0.1:5000/health", 20s));

        fs::create_directories(dir.path() / "nginx" / "tmp");
        const auto nd = (dir.path() / "nginx").string();
        dir.write("nginx/nginx.conf",
                  fmt::format("daemon off;\nworker_processes 1;\npid {0}/nginx.pid;\n"
                              "error_log {0}/error.log warn;\nevents {{ worker_connections 64; }}\n"
                              "http {{\n  access_log off;\n  client_body_temp_path {0}/tmp/body;\n"
                              "  proxy_temp_path {0}/tmp/proxy;\n  fastcgi_temp_path {0}/tmp/f;\n"
                              "  uwsgi_temp_path {0}/tmp/u;\n  scgi_temp_path {0}/tmp/s;\n"
                              "  server {{\n    listen 127.0.0.2:8080;\n"
                              "    location / {{ return 200 'ok'; }}\n"
                              "    location /api/ {{ proxy_pass http://127.0.0.1:5000; }}\n"
                              "  }}\n}}\n",
                              nd));
        nginx = std::make_unique<BackgroundProcess>(
            std::vector<std::string>{*nginx_bin, "-p", nd, "-e", nd + "/error.log", "-c",
                                     nd + "/nginx.conf"},
            dir.path() / "nginx.log");

        const auto config = dir.write(
            "prometheus.yml", "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                              "scrape_configs:\n  - job_name: task-api\n    static_configs:\n"
                              "      - targets: ['127.0.0.1:5000']\n");
        prometheus = std::make_unique<BackgroundProcess>(
            std::vector<std::string>{*prom_bin, "--config.file=" + config.string(),
                                     "--storage.tsdb.path=" + (dir.path() / "tsdb").string(),
                                     "--web.listen-address=127.0.0.2:9090", "--log.level=info"},
            dir.path() / "prometheus.log");
        // This process may not connect to 127.0.0.2: wait for both to say they listen.
        bool up = false;
        for (int i = 0; i < 300 && !up; ++i) {
            const auto r = run_process({"ss", "-Hltn", "src", "127.0.0.2"});
            up = contains(r.out, "127.0.0.2:8080") && contains(r.out, "127.0.0.2:9090") &&
                 contains(prometheus->log(), "Server is ready to receive web requests");
            if (!up)
                std::this_thread::sleep_for(100ms);
        }
        INFO(nginx->log() << prometheus->log());
        REQUIRE(up);
    }
};

std::filesystem::path write_lab(const JumpHostFixture& lab, const std::string& jump) {
    return lab.dir.write("lab.yaml", fmt::format(R"(version: 1
project: jumpverify
network:
  cidr: 127.0.0.0/24
ssh:
  user: labctl
  private_key: {key}
  known_hosts: {known_hosts}
  jump: {jump}
  jump_key: {key}
vms:
  - name: box
    ip: 127.0.0.2
verify:
  services: [nginx, api, prometheus]
  prometheus_jobs: [task-api]
)",
                                                 fmt::arg("key", lab.jump.client_key().string()),
                                                 fmt::arg("known_hosts", lab.known_hosts.string()),
                                                 fmt::arg("jump", jump)));
}

const nlohmann::json& check_of(const nlohmann::json& report, const std::string& name) {
    for (const auto& c : report.at("checks"))
        if (c.at("name") == name)
            return c;
    throw std::runtime_error("no check " + name);
}

} // namespace

TEST_CASE("labctl verify reaches a VM's services only through ssh.jump (local forwards): "
          "stack.health and prometheus.targets pass against the real task API, nginx and "
          "Prometheus, the evidence names the address behind the jump",
          "[verify][jump][cli]") {
    enter_private_netns();
    JumpHostFixture lab;
    lab.only_through_jump("127.0.0.2", 0);
    for (const char* p : {"ss", "ssh"})
        test::require_program(p);
    Vm vm;
    const auto yaml = write_lab(lab, lab.jump_name());

    const auto r =
        test::run_labctl({"-f", yaml.string(), "--output", "json", "verify", "--only",
                          "stack.health", "--only", "prometheus.targets", "--deadline", "40s"},
                         {.timeout = 120s});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    const auto report = nlohmann::json::parse(r.out);
    CHECK(check_of(report, "stack.health").at("status") == "pass");
    CHECK(check_of(report, "prometheus.targets").at("status") == "pass");
    CHECK(contains(r.err, "box is reached through the jump host " + lab.jump_name()));
    // Every request went to a local forward, and the evidence says what it stood for.
    const std::regex local_url(R"(^GET http://127\.0\.0\.1:(\d+)/)");
    std::size_t forwarded = 0;
    for (const auto* name : {"stack.health", "prometheus.targets"})
        for (const auto& e : check_of(report, name).at("evidence")) {
            const auto url = e.at("url").get<std::string>();
            std::smatch m;
            REQUIRE(std::regex_search(url, m, local_url));
            const auto note = e.at("note").get<std::string>();
            CHECK(contains(note, fmt::format("(127.0.0.1:{} is 127.0.0.2:", m[1].str())));
            CHECK(contains(note, "through the jump host " + lab.jump_name() + ")"));
            ++forwarded;
        }
    CHECK(forwarded >= 4); // nginx, api, prometheus health and the targets
    bool prometheus_named = false;
    for (const auto& e : check_of(report, "prometheus.targets").at("evidence"))
        prometheus_named =
            prometheus_named || contains(e.at("note").get<std::string>(), "is 127.0.0.2:9090 ");
    CHECK(prometheus_named);
}

TEST_CASE("labctl up's verify stage passes through the jump host, and the ssh command its URL hint "
          "prints really reaches the VM's Prometheus from here",
          "[verify][jump][cli]") {
    enter_private_netns();
    JumpHostFixture lab;
    lab.only_through_jump("127.0.0.2", 0);
    for (const char* p : {"ss", "ssh"})
        test::require_program(p);
    Vm vm;
    const auto yaml = write_lab(lab, lab.jump_name());
    lab.dir.write("lab.yaml", test::read_file(yaml) + "  checks: [stack.health]\n");

    const auto r =
        test::run_labctl({"-f", yaml.string(), "up", "--stage", "verify"}, {.timeout = 180s});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(contains(r.out, "http://127.0.0.2:9090"));
    const auto at = r.out.find("ssh -F ");
    REQUIRE(at != std::string::npos);
    const auto line = r.out.substr(at, r.out.find('\n', at) - at);
    CHECK(contains(r.out, "reachable only from the jump host"));
    CHECK(contains(line, "-L 9090:127.0.0.2:9090"));
    CHECK(contains(line, "labctl-jump"));

    // Run the printed command and open, here, the URL it promises.
    std::vector<std::string> argv;
    std::istringstream words(line);
    for (std::string w; words >> w;)
        argv.push_back(w);
    argv.insert(argv.begin() + 1, {"-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=no"});
    BackgroundProcess ssh(argv, lab.dir.path() / "ssh.log");
    REQUIRE(test::wait_for_port(9090, 15s));
    const auto ready = verify::http_get("http://127.0.0.1:9090/-/ready", 5s);
    INFO(ssh.log());
    CHECK(ready.status == 200);
}

TEST_CASE("the same lab with ssh.jump: none cannot reach the VM's services: verify fails (exit 8) "
          "and its evidence names the address that refused",
          "[verify][jump][cli]") {
    enter_private_netns();
    JumpHostFixture lab;
    lab.only_through_jump("127.0.0.2", 0);
    for (const char* p : {"ss", "ssh"})
        test::require_program(p);
    Vm vm;
    const auto yaml = write_lab(lab, "none");
    const auto r = test::run_labctl({"-f", yaml.string(), "--output", "json", "verify", "--only",
                                     "stack.health", "--deadline", "3s"},
                                    {.timeout = 60s});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 8);
    const auto report = nlohmann::json::parse(r.out);
    const auto& health = check_of(report, "stack.health");
    CHECK(health.at("status") == "fail");
    bool refused = false;
    for (const auto& e : health.at("evidence"))
        refused =
            refused || (e.at("url") == "GET http://127.0.0.2:9090/-/ready" && e.at("status") == 0 &&
                        contains(e.at("excerpt").get<std::string>(), "refused"));
    CHECK(refused);
    CHECK_FALSE(contains(r.out, "through the jump host"));
}
