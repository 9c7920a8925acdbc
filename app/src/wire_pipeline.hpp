#pragma once
// The wire pipeline's export side for one signal: a bounded queue of encoded spans or log
// records, batched 512 per OTLP request, and the thread that POSTs the batches.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "config.hpp"
#include "otlp_http.hpp"

namespace labctl::taskapi {

class Metrics;

/// The bounded queue of ended spans (or emitted log records) and the thread that exports them.
/// ExportTraceServiceRequest and ExportLogsServiceRequest have the same framing (resource_spans
/// = 1 { resource = 1; scope_spans = 2 { scope = 1; spans = 2 } }, and resource_logs, scope_logs,
/// log_records with the same numbers), so one pipeline serves both. Shared by its tracer or
/// logger and every recording span (a span that outlives its tracer still holds the queue it
/// ends into: after stop() it is dropped and counted, never written to freed memory).
class WirePipeline {
public:
    enum class Signal { traces, logs };

    /// `resource_field` and `scope_field` are the encoded Resource and InstrumentationScope
    /// fields (otlp_encode.hpp) every request of this pipeline carries.
    WirePipeline(Signal signal, std::unique_ptr<OtlpHttpClient> client, std::string resource_field,
                 std::string scope_field, const Config& config, Metrics& metrics);
    ~WirePipeline();
    WirePipeline(const WirePipeline&) = delete;
    WirePipeline& operator=(const WirePipeline&) = delete;

    /// Queues one span (its Span message) or log record (its LogRecord message); drops and
    /// counts it when the queue is full.
    void submit(std::string_view item) noexcept;

    /// Counts an item that could not be encoded completely (out of memory) as dropped.
    void drop() noexcept;

    /// Exports what is queued; false if `timeout` passed first.
    bool flush(std::chrono::microseconds timeout) noexcept;

    /// Flushes (bounded by `timeout`, none when zero), then stops the exporter thread, aborting
    /// an export still waiting on a slow collector. Items submitted afterwards are dropped.
    void stop(std::chrono::microseconds timeout) noexcept;

private:
    /// Spans per OTLP request, the SDK's default: a batch of encoded spans is about 230 KB,
    /// and each POST costs about 60k instructions, so fewer of them count.
    static constexpr std::size_t k_export_batch = 512;
    static constexpr std::size_t k_spare_buffers = 2;

    /// One ExportTraceServiceRequest's worth of encoded spans (each as ScopeSpans.spans entries).
    struct Batch {
        std::string spans;
        std::size_t count = 0;
    };

    void run();
    void rotate();
    void export_batch(const Batch& batch) noexcept;
    bool send_batch(const Batch& batch);

    const Signal m_signal;
    const std::string m_signal_name; ///< the `signal` label of the export metrics
    std::unique_ptr<OtlpHttpClient> m_client;
    const std::string m_resource_field; ///< ResourceSpans.resource, encoded once
    const std::string m_scope_field;    ///< ScopeSpans.scope, encoded once
    const std::size_t m_capacity;       ///< spans queued or in flight, at most
    const std::size_t m_batch_size;
    const std::chrono::milliseconds m_delay;
    Metrics& m_metrics;

    std::mutex m_mutex;
    std::condition_variable m_wake;    ///< a full batch, a flush or stop
    std::condition_variable m_drained; ///< m_queued reached 0
    Batch m_open;                      ///< filling
    std::deque<Batch> m_ready;         ///< full, not yet taken by the exporter thread
    std::vector<std::string> m_spare;  ///< emptied batch buffers, capacity kept
    std::size_t m_queued = 0;          ///< spans in m_open, m_ready and in flight
    int m_flush_requests = 0;
    bool m_stopped = false;
    std::thread m_thread;
};

} // namespace labctl::taskapi
