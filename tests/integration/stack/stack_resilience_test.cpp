// Resilience of the shipped nginx config (rendered for loopback) in front of the real task API:
// bounded load through nginx while the API process is stopped and started again on the same
// port. Reports the 502 window; requires JSON 502 bodies while it is down, only 200s from 2 s
// after it is healthy again, and zero 5xx when it is not restarted.

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <iostream>
#include <mutex>
#include <thread>

#include <labctl/core/process.hpp>

#include "harness.hpp"
#include "skip.hpp"
#include "stack_support.hpp"

using namespace labctl::test::stack;
namespace fs = std::filesystem;
using labctl::test::taskapi::http;
using labctl::test::taskapi::TempDir;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

struct Sample {
    Clock::time_point start;
    Clock::time_point end;
    int status = 0; ///< 0: no HTTP answer at all
    std::string body;
};

/// `threads` clients sending GET /api/tasks through nginx (a fresh connection each, 5 ms apart)
/// until stop() — at most `limit` in total, so the load stays bounded.
class Load {
public:
    Load(std::uint16_t port, int threads, std::chrono::milliseconds limit) {
        const auto deadline = Clock::now() + limit;
        for (int i = 0; i < threads; ++i) {
            m_threads.emplace_back([this, port, deadline] {
                while (!m_stop.load() && Clock::now() < deadline) {
                    Sample s;
                    s.start = Clock::now();
                    try {
                        const auto r = http(port, "GET", "/api/tasks", {}, {}, {}, 5s);
                        s.status = r.status;
                        if (r.status >= 500) {
                            s.body = r.body;
                        }
                    } catch (...) {
                        s.status = 0;
                    }
                    s.end = Clock::now();
                    {
                        const std::lock_guard lock(m_mutex);
                        m_samples.push_back(std::move(s));
                    }
                    std::this_thread::sleep_for(5ms);
                }
            });
        }
    }
    ~Load() { stop(); }
    Load(const Load&) = delete;
    Load& operator=(const Load&) = delete;
    std::vector<Sample> stop() {
        m_stop.store(true);
        for (auto& t : m_threads) {
            if (t.joinable()) {
                t.join();
            }
        }
        const std::lock_guard lock(m_mutex);
        auto samples = m_samples;
        std::sort(samples.begin(), samples.end(),
                  [](const Sample& a, const Sample& b) { return a.start < b.start; });
        return samples;
    }

private:
    std::atomic<bool> m_stop{false};
    std::mutex m_mutex;
    std::vector<Sample> m_samples;
    std::vector<std::thread> m_threads;
};

/// The task API on a fixed loopback port (restartable on the same port).
std::unique_ptr<Child> start_api(const fs::path& dir, std::uint16_t port, int generation) {
    auto child = std::make_unique<Child>(
        std::vector<std::string>{LABCTL_STACK_TASKAPI_BINARY},
        dir / ("taskapi-" + std::to_string(generation) + ".log"),
        std::map<std::string, std::string>{{"HOST", "127.0.0.1"},
                                           {"PORT", std::to_string(port)},
                                           {"DB_PATH", (dir / "tasks.db").string()},
                                           {"OTEL_SDK_DISABLED", "true"},
                                           {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9"}});
    if (!wait_http(port, "/health", 200, 20s)) {
        throw std::runtime_error("task API did not become healthy: " + child->log_text());
    }
    return child;
}

struct Setup {
    TempDir dir;
    std::uint16_t api_port = labctl::test::taskapi::free_port();
    std::uint16_t nginx_port = labctl::test::taskapi::free_port();
    std::uint16_t unused_port = labctl::test::taskapi::free_port();
    std::unique_ptr<Child> api;
    std::unique_ptr<Nginx> nginx;

    Setup() {
        fs::create_directories(dir.path() / "html");
        spit(dir.path() / "html" / "index.html", "<!doctype html><title>lab</title>\n");
        api = start_api(dir.path(), api_port, 1);
        nginx = std::make_unique<Nginx>(
            dir.path() / "nginx",
            render_nginx_server(nginx_port, api_port, unused_port, dir.path() / "html"),
            nginx_port);
    }
};

void require_tools() {
    if (!labctl::find_program("nginx")) {
        labctl::test::skip("nginx is not installed (scripts/install-deps installs it)");
    }
}

double ms_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
}

} // namespace

TEST_CASE("stack resilience: steady load through nginx answers zero 5xx", "[stack][resilience]") {
    require_tools();
    Setup s;
    Load load(s.nginx_port, 4, 3s);
    std::this_thread::sleep_for(3s);
    const auto samples = load.stop();
    std::size_t ok = 0;
    std::size_t server_errors = 0;
    for (const auto& x : samples) {
        ok += x.status == 200 ? 1 : 0;
        server_errors += (x.status >= 500 || x.status == 0) ? 1 : 0;
    }
    std::cout << "steady load: " << samples.size() << " requests, " << ok << " x 200, "
              << server_errors << " x 5xx/no answer\n";
    REQUIRE(samples.size() >= 50);
    CHECK(server_errors == 0);
    CHECK(ok == samples.size());
}

TEST_CASE("stack resilience: task API restarted on the same port: 502 window, then 200s",
          "[stack][resilience]") {
    require_tools();
    Setup s;
    Load load(s.nginx_port, 4, 30s);
    std::this_thread::sleep_for(1s);

    const auto stop_at = Clock::now();
    const int exit_code = s.api->stop(15s);
    CHECK(exit_code == 0); // graceful SIGTERM
    s.api.reset();
    std::this_thread::sleep_for(1500ms); // the backend is down
    const auto restart_at = Clock::now();
    s.api = start_api(s.dir.path(), s.api_port, 2);
    const auto healthy_at = Clock::now();
    std::this_thread::sleep_for(3s);
    const auto samples = load.stop();

    std::size_t bad_gateway = 0;
    std::size_t other_errors = 0;
    std::size_t late_not_ok = 0;
    std::size_t late_total = 0;
    std::optional<Clock::time_point> first_502;
    std::optional<Clock::time_point> last_502;
    std::optional<Clock::time_point> first_ok_after;
    for (const auto& x : samples) {
        if (x.status == 502) {
            ++bad_gateway;
            if (!first_502) {
                first_502 = x.start;
            }
            last_502 = x.end;
            INFO(x.body);
            CHECK(nlohmann::json::parse(x.body).contains("error"));
        } else if (x.status != 200) {
            ++other_errors;
        }
        if (x.start >= stop_at && x.status == 200 && x.start >= restart_at && !first_ok_after) {
            first_ok_after = x.start;
        }
        if (x.start >= healthy_at + 2s) {
            ++late_total;
            late_not_ok += x.status == 200 ? 0 : 1;
        }
    }
    REQUIRE(first_502.has_value());
    REQUIRE(first_ok_after.has_value());
    const double window = ms_between(*first_502, *last_502);
    std::cout << "restart: " << samples.size() << " requests; backend stopped at +0 ms, restarted "
              << ms_between(stop_at, restart_at) << " ms, healthy "
              << ms_between(stop_at, healthy_at) << " ms; 502 window " << window << " ms ("
              << bad_gateway << " x 502, from +" << ms_between(stop_at, *first_502) << " to +"
              << ms_between(stop_at, *last_502) << " ms); first 200 after restart at +"
              << ms_between(stop_at, *first_ok_after) << " ms; " << other_errors
              << " other non-200\n";
    CHECK(bad_gateway > 0);
    CHECK(other_errors == 0);
    // Recovery: 200s from at most 2 s after the backend is healthy again.
    REQUIRE(late_total > 0);
    CHECK(late_not_ok == 0);
    CHECK(ms_between(healthy_at, *last_502) <= 2000.0);
}

TEST_CASE("stack nginx: security headers, gzip for static assets, JSON 502, /otlp/ POST only",
          "[stack][nginx]") {
    require_tools();
    Setup s;
    std::string css;
    for (int i = 0; i < 200; ++i) {
        css += ".rule-" + std::to_string(i) + " { color: #123456; margin: 0 auto; }\n";
    }
    spit(s.dir.path() / "html" / "styles.css", css);

    const auto page = http(s.nginx_port, "GET", "/");
    REQUIRE(page.status == 200);
    CHECK(page.header("x-content-type-options") == "nosniff");
    CHECK(page.header("x-frame-options") == "DENY");
    CHECK(page.header("content-security-policy").find("default-src 'self'") != std::string::npos);
    CHECK(page.header("referrer-policy") == "strict-origin-when-cross-origin");
    CHECK(page.header("server") == "nginx"); // server_tokens off: no version

    const auto gz = http(s.nginx_port, "GET", "/styles.css", {}, {}, {{"Accept-Encoding", "gzip"}});
    REQUIRE(gz.status == 200);
    CHECK(gz.header("content-encoding") == "gzip");
    CHECK(gz.body.size() < css.size());

    // /api/ reaches the task API with the path unchanged; headers also on proxied answers.
    const auto tasks = http(s.nginx_port, "GET", "/api/tasks");
    REQUIRE(tasks.status == 200);
    CHECK(tasks.json().contains("tasks"));
    CHECK(tasks.header("x-content-type-options") == "nosniff");
    const auto missing = http(s.nginx_port, "GET", "/api/tasks/999999");
    CHECK(missing.status == 404);
    CHECK(missing.json()["error"] == "Task not found"); // backend errors pass through

    // Nothing listens on the collector port here: a JSON 502, with the security headers.
    const auto otlp = http(s.nginx_port, "POST", "/otlp/v1/traces", "{}", "application/json");
    CHECK(otlp.status == 502);
    CHECK(otlp.header("content-type").find("application/json") != std::string::npos);
    CHECK(otlp.json().contains("error"));
    CHECK(otlp.header("x-frame-options") == "DENY");
    CHECK(http(s.nginx_port, "GET", "/otlp/v1/traces").status == 403);

    // The backend stopped: /api/ answers a JSON 502 too.
    s.api->stop(15s);
    const auto down = http(s.nginx_port, "GET", "/api/tasks");
    CHECK(down.status == 502);
    CHECK(down.json()["error"].get<std::string>().find("Bad gateway") != std::string::npos);
}
