#pragma once
// Prometheus metrics (names kept from the original lab so its dashboards' PromQL works).

#include <atomic>
#include <memory>
#include <string>
#include <string_view>

namespace prometheus {
class Registry;
class Counter;
template <typename T>
class Family;
class Histogram;
} // namespace prometheus

namespace labctl::taskapi {

inline constexpr const char* k_metrics_content_type = "text/plain; version=0.0.4; charset=utf-8";

class Metrics {
public:
    Metrics();
    ~Metrics();
    Metrics(const Metrics&) = delete;
    Metrics& operator=(const Metrics&) = delete;

    /// One finished API request (never /metrics or /health). `endpoint` is the route template.
    void observe_request(const std::string& method, const std::string& endpoint, int status,
                         double seconds);
    /// One SQL statement; `operation` is SELECT/INSERT/UPDATE/DELETE.
    void observe_db(std::string_view operation, double seconds);
    /// One transaction of the group-commit writer and how many writes it made durable at once
    /// (one thread calls this: the writer's).
    void observe_commit_group(std::size_t writes);
    /// Telemetry items dropped because the bounded export queue was full.
    void count_export_dropped(const std::string& signal, double n = 1);
    /// Export batches the OTLP exporter reported as failed.
    void count_export_failed(const std::string& signal);

    /// The Prometheus text exposition (format 0.0.4).
    std::string serialize() const;

private:
    std::shared_ptr<prometheus::Registry> m_registry;
    prometheus::Family<prometheus::Counter>* m_requests = nullptr;
    prometheus::Family<prometheus::Counter>* m_errors = nullptr;
    prometheus::Family<prometheus::Histogram>* m_duration = nullptr;
    prometheus::Family<prometheus::Histogram>* m_db_duration = nullptr;
    prometheus::Family<prometheus::Histogram>* m_commit_groups = nullptr;
    prometheus::Histogram* m_commit_group = nullptr; ///< on the first commit: absent when unused
    prometheus::Family<prometheus::Counter>* m_dropped = nullptr;
    prometheus::Family<prometheus::Counter>* m_export_failed = nullptr;
    // Children of fixed label sets, created once: Family::Add builds a label map, hashes it and
    // takes the family's lock on every call.
    // The db series appear on first use (as before): created lazily, then remembered.
    std::atomic<prometheus::Histogram*> m_db_ops[4] = {};
    prometheus::Counter* m_dropped_traces = nullptr;
    prometheus::Counter* m_dropped_logs = nullptr;
    prometheus::Counter* m_failed_traces = nullptr;
    prometheus::Counter* m_failed_logs = nullptr;
};

} // namespace labctl::taskapi
