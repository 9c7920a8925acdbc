#pragma once
// Service configuration from the environment (12-factor; the compose file sets these).

#include <chrono>
#include <cstdint>
#include <string>

namespace labctl::taskapi {

enum class LogLevel { debug = 0, info = 1, warn = 2, error = 3 };

struct Config {
    std::string host = "0.0.0.0";                 ///< HOST
    std::uint16_t port = 5000;                    ///< PORT (0: any free port, logged at start)
    std::string db_path = "/data/tasks.db";       ///< DB_PATH
    int max_threads = 64;                         ///< MAX_THREADS: concurrent requests
    std::chrono::milliseconds busy_timeout{5000}; ///< DB_BUSY_TIMEOUT_MS
    /// DB_GROUP_COMMIT (on|off): concurrent writes share one transaction and fsync
    /// (group_commit.hpp); off commits each request's write on its own, as before.
    bool group_commit = true;
    LogLevel log_level = LogLevel::info; ///< LOG_LEVEL: debug|info|warn|error

    bool otel_enabled = true;                            ///< !OTEL_SDK_DISABLED
    std::string otlp_endpoint = "http://localhost:4318"; ///< OTEL_EXPORTER_OTLP_ENDPOINT
    std::string otlp_traces_endpoint; ///< OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or endpoint+/v1/traces
    std::string otlp_logs_endpoint;   ///< OTEL_EXPORTER_OTLP_LOGS_ENDPOINT or endpoint+/v1/logs
    std::chrono::milliseconds otlp_timeout{3000}; ///< OTEL_EXPORTER_OTLP_TIMEOUT (ms)
    std::string service_name = "task-api";        ///< OTEL_SERVICE_NAME
    std::string service_version;                  ///< build version
    std::string deployment_environment = "lab";   ///< DEPLOYMENT_ENVIRONMENT
    std::size_t export_queue_size = 2048;         ///< OTEL_BSP_MAX_QUEUE_SIZE (also for logs)
    std::chrono::milliseconds export_delay{1000}; ///< OTEL_BSP_SCHEDULE_DELAY (ms)
    bool trivial = false; ///< `--trivial`: benchmark ceiling, every request 200
};

/// Reads the environment; throws std::invalid_argument naming the variable on a bad value.
Config config_from_env();

} // namespace labctl::taskapi
