#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <labctl/core/log.hpp>

using namespace labctl;

namespace {

std::vector<std::string> g_lines;
void capture(std::string_view line) {
    g_lines.emplace_back(line);
}

struct Capture {
    explicit Capture(log::Settings s) {
        g_lines.clear();
        log::configure(s);
        log::set_sink(capture);
    }
    ~Capture() {
        log::set_sink(nullptr);
        log::configure({});
    }
};

} // namespace

TEST_CASE("json log lines are NDJSON with level, message and fields", "[core][log]") {
    Capture c({.level = log::Level::info, .format = log::Format::json});
    log::write(log::Level::info, "provisioned", {{"vm", "lab1"}});
    REQUIRE(g_lines.size() == 1);
    CHECK(g_lines[0].back() == '\n');
    const auto j = nlohmann::json::parse(g_lines[0]);
    CHECK(j["level"] == "info");
    CHECK(j["msg"] == "provisioned");
    CHECK(j["vm"] == "lab1");
    CHECK(j["ts"].get<std::string>().back() == 'Z');
}

TEST_CASE("log levels below the configured one are dropped", "[core][log]") {
    Capture c({.level = log::Level::warn});
    log::info("hidden");
    log::debug("hidden too");
    log::warn("shown");
    log::error("also shown");
    REQUIRE(g_lines.size() == 2);
    CHECK(g_lines[0].find("shown") != std::string::npos);
}

TEST_CASE("text log lines are timestamped when stderr is not a terminal", "[core][log]") {
    Capture c({.level = log::Level::info, .format = log::Format::text, .tty = false});
    log::info("hello {}", 42);
    REQUIRE(g_lines.size() == 1);
    CHECK(g_lines[0].find("Z info  hello 42\n") != std::string::npos);
    CHECK(g_lines[0].find('\033') == std::string::npos);
}

TEST_CASE("secrets never reach the log", "[core][log]") {
    Capture c({.level = log::Level::info, .format = log::Format::json});
    log::write(log::Level::info, "login with password=hunter2", {{"auth", "Bearer abc.def"}});
    REQUIRE(g_lines.size() == 1);
    CHECK(g_lines[0].find("hunter2") == std::string::npos);
    CHECK(g_lines[0].find("abc.def") == std::string::npos);
}
