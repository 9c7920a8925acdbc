// A real Prometheus (Debian package) scrapes the task API on loopback: the target is up, and the
// SLI/SLO dashboard queries of STACK.md §4 evaluate through Prometheus' HTTP API after traffic.

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>
#include <thread>

#include <labctl/core/process.hpp>

#include "harness.hpp"
#include "skip.hpp"

using namespace labctl::test::taskapi;

namespace {

/// prometheus --config.file=<dir>/prometheus.yml on 127.0.0.1:<port>, storage in <dir>/data.
class PrometheusProcess {
public:
    PrometheusProcess(const std::filesystem::path& dir, std::uint16_t api_port) {
        m_port = free_port();
        const auto config = dir / "prometheus.yml";
        std::ofstream(config) << "global:\n"
                                 "  scrape_interval: 1s\n"
                                 "  evaluation_interval: 1s\n"
                                 "scrape_configs:\n"
                                 "  - job_name: task-api\n"
                                 "    static_configs:\n"
                                 "      - targets: ['127.0.0.1:"
                              << api_port
                              << "']\n"
                                 "        labels:\n"
                                 "          service: task-api\n";
        const std::string binary = *labctl::find_program("prometheus");
        std::vector<std::string> args = {binary, "--config.file=" + config.string(),
                                         "--storage.tsdb.path=" + (dir / "data").string(),
                                         "--web.listen-address=127.0.0.1:" + std::to_string(m_port),
                                         "--log.level=warn"};
        std::vector<char*> argv;
        for (auto& a : args) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        const std::string log = (dir / "prometheus.log").string();
        m_pid = fork();
        if (m_pid == 0) {
            const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
                close(fd);
            }
            execv(binary.c_str(), argv.data());
            _exit(127);
        }
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (std::chrono::steady_clock::now() < deadline) {
            try {
                if (http(m_port, "GET", "/-/ready", {}, {}, {}, std::chrono::seconds(2)).status ==
                    200) {
                    return;
                }
            } catch (...) {
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
        throw std::runtime_error("prometheus did not become ready");
    }
    ~PrometheusProcess() {
        if (m_pid > 0) {
            ::kill(m_pid, SIGTERM);
            int status = 0;
            for (int i = 0; i < 100 && waitpid(m_pid, &status, WNOHANG) == 0; ++i) {
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
            if (waitpid(m_pid, &status, WNOHANG) == 0) {
                ::kill(m_pid, SIGKILL);
                waitpid(m_pid, &status, 0);
            }
        }
    }
    PrometheusProcess(const PrometheusProcess&) = delete;
    PrometheusProcess& operator=(const PrometheusProcess&) = delete;
    std::uint16_t port() const { return m_port; }

    nlohmann::json query(const std::string& promql) const {
        std::string encoded;
        for (const unsigned char c : promql) {
            if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
                encoded.push_back(static_cast<char>(c));
            } else {
                char buf[4];
                std::snprintf(buf, sizeof buf, "%%%02X", c);
                encoded += buf;
            }
        }
        const auto r = http(m_port, "GET", "/api/v1/query?query=" + encoded);
        INFO(promql << " -> " << r.status << " " << r.body);
        REQUIRE(r.status == 200);
        return r.json();
    }

private:
    std::uint16_t m_port = 0;
    pid_t m_pid = -1;
};

} // namespace

TEST_CASE("taskapi prometheus: a real Prometheus scrapes the API and the SLI queries evaluate",
          "[taskapi][prometheus]") {
    if (!labctl::find_program("prometheus")) {
        labctl::test::skip("prometheus is not installed (scripts/install-deps installs it)");
    }
    TempDir dir;
    ApiProcess api(dir.path() / "tasks.db", dir.path() / "api.log");
    PrometheusProcess prom(dir.path(), api.port());

    // Target up (health "unknown" until the first scrape: keep polling).
    std::string health;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
        const auto targets = http(prom.port(), "GET", "/api/v1/targets?state=active").json();
        for (const auto& t : targets["data"]["activeTargets"]) {
            if (t["labels"]["job"] == "task-api") {
                health = t["health"].get<std::string>();
                INFO("lastError: " << t["lastError"]);
            }
        }
        if (health == "up") {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    REQUIRE(health == "up");

    // Traffic over several scrapes, so rate() has at least two samples.
    for (int round = 0; round < 4; ++round) {
        for (int i = 0; i < 10; ++i) {
            http(api.port(), "POST", "/api/tasks", R"({"title":"p"})", "application/json");
            http(api.port(), "GET", "/api/tasks");
            http(api.port(), "GET", "/api/tasks/999999");
        }
        http(api.port(), "GET", "/api/simulate-error");
        std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    }

    const std::vector<std::string> sli_queries = {
        "100 * (1 - (sum(rate(http_errors_total[5m])) / sum(rate(http_requests_total[5m]))))",
        "histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket[5m])) by (le))",
        "sum(rate(http_requests_total[5m])) by (endpoint)",
        "100 * sum(rate(http_errors_total[5m])) by (endpoint) / "
        "sum(rate(http_requests_total[5m])) by (endpoint)",
        "histogram_quantile(0.50, sum(rate(http_request_duration_seconds_bucket[5m])) by (le, "
        "endpoint))",
        "histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket[5m])) by (le, "
        "endpoint))",
        "histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket[5m])) by (le, "
        "endpoint))",
        "histogram_quantile(0.95, sum(rate(db_query_duration_seconds_bucket[5m])) by (le, "
        "operation))",
        "sum(rate(http_requests_total[5m])) by (status_code)",
        // Error budget: 99 % SLO over 30 days.
        "1 - ((sum(increase(http_errors_total[30d])) / sum(increase(http_requests_total[30d]))) / "
        "0.01)",
    };
    for (const auto& q : sli_queries) {
        const auto j = prom.query(q);
        INFO(q << " -> " << j.dump());
        REQUIRE(j["status"] == "success");
        REQUIRE(j["data"]["resultType"] == "vector");
        REQUIRE_FALSE(j["data"]["result"].empty());
    }
    // Availability is below 100 % (the 404s and the 500s count) and a real number.
    const auto availability = prom.query(sli_queries[0]);
    const double value =
        std::stod(availability["data"]["result"][0]["value"][1].get<std::string>());
    CHECK(value < 100.0);
    CHECK(value > 0.0);

    // Prometheus' own scrapes are not SLI traffic.
    const auto scrapes = prom.query(R"(http_requests_total{endpoint=~"/metrics|/health"})");
    CHECK(scrapes["data"]["result"].empty());
    const auto up = prom.query(R"(up{job="task-api",service="task-api"})");
    REQUIRE(up["data"]["result"].size() == 1);
    CHECK(up["data"]["result"][0]["value"][1] == "1");
}
