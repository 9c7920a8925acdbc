#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <nlohmann/json.hpp>

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

void emit(std::string_view line) {
    if (g_sink != nullptr) {
        g_sink(line);
        return;
    }
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
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

void write(Level level, std::string_view message, std::initializer_list<Field> fields) {
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
