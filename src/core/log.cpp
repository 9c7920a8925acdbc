#include <sys/ioctl.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include <labctl/core/log.hpp>
#include <labctl/core/redact.hpp>

namespace labctl::log {
namespace {

Settings g_settings;
Sink g_sink = nullptr;
std::mutex g_mutex; // stages log from worker threads (verify runs checks in parallel)

std::string utc_timestamp() {
    using namespace std::chrono;
    const auto now = system_clock::now();
    const auto secs = system_clock::to_time_t(now);
    const auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    return fmt::format("{}.{:03d}Z", buf, ms);
}

std::string_view colour(Level level) {
    switch (level) {
    case Level::trace:
    case Level::debug:
        return "\033[2m";
    case Level::info:
        return "";
    case Level::warn:
        return "\033[33m";
    case Level::error:
        return "\033[31m";
    }
    return "";
}

// The live status lines (g_mutex guards them).
struct Status {
    std::string what, text;
    std::chrono::steady_clock::time_point started;
};
std::map<int, Status> g_status;
int g_next_status = 0;
bool g_status_drawn = false;
std::chrono::steady_clock::time_point g_status_drawn_at;
std::condition_variable g_status_changed;
// Redraws the elapsed times while a status is open. Ended and joined at exit too, should a
// status still be open then (a joinable std::thread destroyed would terminate the process).
struct Ticker {
    std::thread thread;
    ~Ticker() {
        if (!thread.joinable())
            return;
        {
            std::lock_guard lock(g_mutex);
            g_status.clear();
            g_status_changed.notify_all();
        }
        thread.join();
    }
    bool joinable() const { return thread.joinable(); }
};
Ticker g_ticker;

void raw(std::string_view text) {
    if (g_sink != nullptr) {
        g_sink(text);
        return;
    }
    std::fwrite(text.data(), 1, text.size(), stderr);
    std::fflush(stderr);
}

std::size_t columns() {
    winsize ws{};
    if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10)
        return ws.ws_col;
    return 100;
}

// The bottom line: every open status, cut to the terminal's width (no wrapping: \r must reach
// its start again).
void draw_status() {
    std::string line;
    const auto now = std::chrono::steady_clock::now();
    for (const auto& [id, s] : g_status) {
        if (s.text.empty())
            continue; // nothing to say yet
        const auto secs = std::chrono::duration_cast<std::chrono::milliseconds>(now - s.started);
        const auto t = std::chrono::duration_cast<std::chrono::seconds>(secs).count();
        const auto elapsed = t < 60     ? fmt::format("{}s", t)
                             : t < 3600 ? fmt::format("{}m{:02d}s", t / 60, t % 60)
                                        : fmt::format("{}h{:02d}m", t / 3600, t % 3600 / 60);
        line += fmt::format("{}{} {}: {}", line.empty() ? "" : "  |  ", elapsed, s.what, s.text);
    }
    const auto width = columns() - 1;
    if (line.size() > width) {
        line.resize(width - 1);
        while (!line.empty() && (static_cast<unsigned char>(line.back()) & 0xC0) == 0x80)
            line.pop_back(); // not inside a UTF-8 sequence
        line += "~";
    }
    raw("\r\033[K" + line);
    g_status_drawn = !line.empty();
    g_status_drawn_at = now;
}

void clear_status() {
    if (g_status_drawn) {
        raw("\r\033[K");
        g_status_drawn = false;
    }
}

void emit(std::string_view line) {
    clear_status();
    raw(line);
    if (!g_status.empty())
        draw_status();
}

} // namespace

void configure(const Settings& settings) {
    g_settings = settings;
}
const Settings& settings() {
    return g_settings;
}
bool enabled(Level level) {
    return level >= g_settings.level;
}
void set_sink(Sink sink) {
    g_sink = sink;
}

std::string_view level_name(Level level) {
    switch (level) {
    case Level::trace:
        return "trace";
    case Level::debug:
        return "debug";
    case Level::info:
        return "info";
    case Level::warn:
        return "warn";
    case Level::error:
        return "error";
    }
    return "info";
}

bool live_status() {
    return g_settings.tty && g_settings.format == Format::text && enabled(Level::info);
}

int status_open(const std::string& what) {
    std::unique_lock lock(g_mutex);
    const int id = ++g_next_status;
    g_status[id] = {what, "", std::chrono::steady_clock::now()};
    if (!g_ticker.joinable())
        g_ticker.thread = std::thread([] {
            std::unique_lock l(g_mutex);
            while (!g_status.empty()) {
                g_status_changed.wait_for(l, std::chrono::seconds(1));
                if (!g_status.empty())
                    draw_status();
            }
        });
    draw_status();
    return id;
}

void status_set(int id, const std::string& text) {
    std::lock_guard lock(g_mutex);
    const auto it = g_status.find(id);
    if (it == g_status.end() || it->second.text == text)
        return;
    const bool first = it->second.text.empty();
    it->second.text = text;
    // At most 10 redraws a second (a stream updates per chunk); the ticker catches up.
    if (first ||
        std::chrono::steady_clock::now() - g_status_drawn_at >= std::chrono::milliseconds(100))
        draw_status();
}

void status_close(int id) {
    std::thread ticker;
    {
        std::lock_guard lock(g_mutex);
        g_status.erase(id);
        if (g_status.empty()) {
            clear_status();
            ticker = std::move(g_ticker.thread); // it ends when woken: the map is empty
        } else {
            draw_status();
        }
        g_status_changed.notify_all();
    }
    if (ticker.joinable())
        ticker.join();
}

void write(Level level, std::string_view message, std::initializer_list<Field> fields) {
    write(level, message, std::vector<Field>(fields));
}

void write(Level level, std::string_view message, const std::vector<Field>& fields) {
    if (!enabled(level) && level != Level::error)
        return;
    const std::string msg = redact(message);
    std::string line;
    if (g_settings.format == Format::json) {
        nlohmann::json j;
        j["ts"] = utc_timestamp();
        j["level"] = level_name(level);
        j["msg"] = msg;
        for (const auto& [k, v] : fields)
            j[std::string(k)] = redact(v);
        line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    } else {
        std::string extra;
        for (const auto& [k, v] : fields)
            extra += fmt::format(" {}={}", k, redact(v));
        const bool coloured = g_settings.color && !colour(level).empty();
        const std::string_view prefix = level >= Level::warn ? level_name(level) : "";
        if (g_settings.tty) {
            line = fmt::format("{}{}{}{}{}{}\n", coloured ? colour(level) : "", prefix,
                               prefix.empty() ? "" : ": ", msg, extra, coloured ? "\033[0m" : "");
        } else {
            line = fmt::format("{} {:<5} {}{}\n", utc_timestamp(), level_name(level), msg, extra);
        }
    }
    std::lock_guard lock(g_mutex);
    emit(line);
}

} // namespace labctl::log
