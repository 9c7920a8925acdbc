#include "config.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <stdexcept>

namespace labctl::taskapi {
namespace {

std::string env(const char* name, std::string fallback = {}) {
    const char* v = std::getenv(name);
    return (v != nullptr && *v != '\0') ? std::string(v) : fallback;
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

std::int64_t env_int(const char* name, std::int64_t fallback, std::int64_t min, std::int64_t max) {
    const std::string v = env(name);
    if (v.empty()) {
        return fallback;
    }
    std::int64_t out = 0;
    const auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    if (ec != std::errc{} || ptr != v.data() + v.size() || out < min || out > max) {
        throw std::invalid_argument(std::string(name) + " must be an integer in [" +
                                    std::to_string(min) + ", " + std::to_string(max) + "], got '" +
                                    v + "'");
    }
    return out;
}

std::string trim_slash(std::string s) {
    while (!s.empty() && s.back() == '/') {
        s.pop_back();
    }
    return s;
}

} // namespace

Config config_from_env() {
    Config c;
    c.host = env("HOST", c.host);
    c.port = static_cast<std::uint16_t>(env_int("PORT", c.port, 0, 65535));
    c.db_path = env("DB_PATH", c.db_path);
    c.max_threads = static_cast<int>(env_int("MAX_THREADS", c.max_threads, 2, 1024));
    c.busy_timeout = std::chrono::milliseconds(
        env_int("DB_BUSY_TIMEOUT_MS", c.busy_timeout.count(), 0, 600'000));
    const std::string group = lower(env("DB_GROUP_COMMIT", "on"));
    if (group != "on" && group != "off") {
        throw std::invalid_argument("DB_GROUP_COMMIT must be on|off, got '" + group + "'");
    }
    c.group_commit = group == "on";

    const std::string level = lower(env("LOG_LEVEL", "info"));
    if (level == "debug") {
        c.log_level = LogLevel::debug;
    } else if (level == "info") {
        c.log_level = LogLevel::info;
    } else if (level == "warn" || level == "warning") {
        c.log_level = LogLevel::warn;
    } else if (level == "error") {
        c.log_level = LogLevel::error;
    } else {
        throw std::invalid_argument("LOG_LEVEL must be debug|info|warn|error, got '" + level + "'");
    }

    c.otel_enabled = lower(env("OTEL_SDK_DISABLED", "false")) != "true";
    c.otlp_endpoint = trim_slash(env("OTEL_EXPORTER_OTLP_ENDPOINT", c.otlp_endpoint));
    c.otlp_traces_endpoint =
        env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", c.otlp_endpoint + "/v1/traces");
    c.otlp_logs_endpoint = env("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", c.otlp_endpoint + "/v1/logs");
    c.otlp_timeout = std::chrono::milliseconds(
        env_int("OTEL_EXPORTER_OTLP_TIMEOUT", c.otlp_timeout.count(), 1, 60'000));
    c.service_name = env("OTEL_SERVICE_NAME", c.service_name);
    c.deployment_environment = env("DEPLOYMENT_ENVIRONMENT", c.deployment_environment);
    c.export_queue_size = static_cast<std::size_t>(env_int(
        "OTEL_BSP_MAX_QUEUE_SIZE", static_cast<std::int64_t>(c.export_queue_size), 1, 1'000'000));
    c.export_delay = std::chrono::milliseconds(
        env_int("OTEL_BSP_SCHEDULE_DELAY", c.export_delay.count(), 1, 600'000));
    return c;
}

} // namespace labctl::taskapi
