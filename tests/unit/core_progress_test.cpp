// Progress lines: the live status line on a terminal (drawn, kept below log lines, cleared), and
// event lines with fields elsewhere. The sink captures exactly what stderr would get.

#include <catch2/catch.hpp>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include <labctl/core/log.hpp>
#include <labctl/core/progress.hpp>

using namespace labctl;
using namespace std::chrono_literals;

namespace {

std::mutex g_mutex;
std::string g_out;
void capture(std::string_view text) {
    std::lock_guard lock(g_mutex);
    g_out += text;
}
std::string output() {
    std::lock_guard lock(g_mutex);
    return g_out;
}

struct Capture {
    explicit Capture(log::Settings s) {
        g_out.clear();
        log::configure(s);
        log::set_sink(capture);
    }
    ~Capture() {
        log::set_sink(nullptr);
        log::configure({});
    }
};

std::size_t count(const std::string& hay, const std::string& needle) {
    std::size_t n = 0;
    for (auto at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1))
        ++n;
    return n;
}

} // namespace

TEST_CASE("bytes are shown in decimal units", "[core][progress]") {
    CHECK(format_bytes(512) == "512 B");
    CHECK(format_bytes(12'400) == "12.4 kB");
    CHECK(format_bytes(336'830'464) == "336.8 MB");
    CHECK(format_bytes(2'500'000'000) == "2.5 GB");
}

TEST_CASE("on a terminal a step's status line is redrawn in place, stays below log lines and is "
          "cleared at the end",
          "[core][progress]") {
    Capture c({.level = log::Level::info, .tty = true});
    REQUIRE(log::live_status());
    {
        Progress p("preload lab1");
        p.update("1.0 MB sent, 1.0 MB/s", {{"bytes", "1000000"}});
        std::this_thread::sleep_for(150ms); // past the redraw limit
        p.update("2.0 MB sent, 1.0 MB/s", {{"bytes", "2000000"}});
        log::info("a log line meanwhile");
        const auto out = output();
        // Drawn with \r and erase-line, never followed by a newline of its own.
        CHECK(out.find("\r\033[K0s preload lab1: 1.0 MB sent, 1.0 MB/s") != std::string::npos);
        CHECK(out.find("preload lab1: 1.0 MB sent, 1.0 MB/s\n") == std::string::npos);
        // The log line clears the status line first, then the status is drawn again below it.
        const auto line = out.find("a log line meanwhile\n");
        REQUIRE(line != std::string::npos);
        CHECK(out.substr(line - 4, 4) == "\r\033[K");
        CHECK(out.find("preload lab1: 2.0 MB sent", line) != std::string::npos);
        // The ticker redraws the elapsed time each second without an update.
        std::this_thread::sleep_for(1100ms);
        CHECK(output().find("1s preload lab1: 2.0 MB sent") != std::string::npos);
        // Two steps at once share the line.
        Progress q("VM 'lab2'");
        q.show("waiting for SSH");
        CHECK(output().find(
                  "preload lab1: 2.0 MB sent, 1.0 MB/s  |  0s VM 'lab2': waiting for SSH") !=
              std::string::npos);
    }
    const auto out = output();
    CHECK(out.size() >= 4);
    CHECK(out.substr(out.size() - 4) == "\r\033[K"); // cleared, the cursor at the line's start
    // Without a terminal nothing of this is written.
    Capture plain({.level = log::Level::info});
    CHECK_FALSE(log::live_status());
}

TEST_CASE("without a terminal a step writes event lines with its fields, updates at most every "
          "interval",
          "[core][progress]") {
    Capture c({.level = log::Level::info, .format = log::Format::json});
    CHECK_FALSE(log::live_status());
    {
        Progress p("upload base.qcow2", 3600s);
        p.event("336.8 MB to send", {{"total_bytes", "336830464"}});
        p.update("1.0 MB of 336.8 MB (0%)", {{"bytes", "1000000"}}); // within the interval
        p.show("not a line");
    }
    {
        Progress p("preload lab1", 0s);
        p.update("2.0 MB sent", {{"bytes", "2000000"}, {"rate_bps", "1000000"}});
    }
    const auto out = output();
    CHECK(count(out, "\n") == 2);
    CHECK(out.find("\r") == std::string::npos);
    const auto first = nlohmann::json::parse(out.substr(0, out.find('\n')));
    CHECK(first["progress"] == "upload base.qcow2");
    CHECK(first["total_bytes"] == "336830464");
    CHECK(first.contains("elapsed_s"));
    const auto second = nlohmann::json::parse(out.substr(out.find('\n') + 1));
    CHECK(second["progress"] == "preload lab1");
    CHECK(second["bytes"] == "2000000");
    CHECK(second["rate_bps"] == "1000000");
}
