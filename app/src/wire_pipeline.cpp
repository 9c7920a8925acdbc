// The wire pipeline's export side: bounded queue, batching and the exporter thread that frames
// each batch as one Export*ServiceRequest and POSTs it (OtlpHttpClient retries).
#include "wire_pipeline.hpp"

#include <opentelemetry/sdk/common/global_log_handler.h>

#include <algorithm>
#include <array>
#include <system_error>

#include "metrics.hpp"
#include "wire_format.hpp"

namespace labctl::taskapi {

using namespace wire;

WirePipeline::WirePipeline(Signal signal, std::unique_ptr<OtlpHttpClient> client,
                           std::string resource_field, std::string scope_field,
                           const Config& config, Metrics& metrics)
    : m_signal(signal), m_signal_name(signal == Signal::traces ? "traces" : "logs"),
      m_client(std::move(client)), m_resource_field(std::move(resource_field)),
      m_scope_field(std::move(scope_field)), m_capacity(config.export_queue_size),
      m_batch_size(std::min<std::size_t>(k_export_batch, config.export_queue_size)),
      m_delay(config.export_delay), m_metrics(metrics) {
    m_open.spans.reserve(m_batch_size * 512);
    m_thread = std::thread([this] { run(); });
}

WirePipeline::~WirePipeline() {
    stop(std::chrono::microseconds(0));
}

void WirePipeline::submit(std::string_view item) noexcept {
    try {
        std::array<char, 16> head; // the tag of ScopeSpans.spans (ScopeLogs.log_records), length
        char* p = head.data();
        p = write_varint(p, (2U << 3) | k_len);
        p = write_varint(p, item.size());
        std::unique_lock<std::mutex> lock(m_mutex);
        if (m_stopped || m_queued >= m_capacity) {
            lock.unlock();
            m_metrics.count_export_dropped(m_signal_name);
            return;
        }
        m_open.spans.append(head.data(), static_cast<std::size_t>(p - head.data()));
        m_open.spans.append(item);
        ++m_open.count;
        ++m_queued;
        if (m_open.count >= m_batch_size) {
            rotate();
            lock.unlock();
            m_wake.notify_one(); // only for a full batch: not a wake-up per span
        }
    } catch (...) {
        m_metrics.count_export_dropped(m_signal_name);
    }
}

void WirePipeline::drop() noexcept {
    m_metrics.count_export_dropped(m_signal_name);
}

bool WirePipeline::flush(std::chrono::microseconds timeout) noexcept {
    std::unique_lock<std::mutex> lock(m_mutex);
    ++m_flush_requests;
    m_wake.notify_one();
    const bool done = m_drained.wait_for(lock, timeout, [&] { return m_queued == 0; });
    --m_flush_requests;
    return done;
}

void WirePipeline::stop(std::chrono::microseconds timeout) noexcept {
    if (timeout.count() > 0) {
        flush(timeout);
    }
    {
        const std::lock_guard<std::mutex> lock(m_mutex);
        if (m_stopped) {
            return;
        }
        m_stopped = true;
    }
    m_client->abort();
    m_wake.notify_one();
    try {
        if (m_thread.joinable() && m_thread.get_id() != std::this_thread::get_id()) {
            m_thread.join();
        }
    } catch (const std::system_error&) {
    }
}

void WirePipeline::run() {
    std::unique_lock<std::mutex> lock(m_mutex);
    for (;;) {
        m_wake.wait_for(lock, m_delay, [&] {
            return m_stopped || !m_ready.empty() || (m_flush_requests > 0 && m_queued > 0);
        });
        if (m_stopped) {
            return; // what is left was given the flush before stop()
        }
        // Full batches first; a partial one when the delay passed or a flush waits.
        if (m_ready.empty() && m_open.count > 0) {
            rotate();
        }
        while (!m_ready.empty() && !m_stopped) {
            Batch batch = std::move(m_ready.front());
            m_ready.pop_front();
            lock.unlock();
            export_batch(batch); // noexcept: a failure is counted, the thread goes on
            lock.lock();
            m_queued -= batch.count;
            if (m_spare.size() < k_spare_buffers) {
                batch.spans.clear(); // keeps its capacity for a later batch
                m_spare.push_back(std::move(batch.spans));
            }
        }
        if (m_queued == 0) {
            m_drained.notify_all();
        }
    }
}

/// Moves the open batch to the ready ones and opens a new one in a spare buffer (growing a
/// fresh string to a batch's size would copy it several times, under the lock). Needs m_mutex.
void WirePipeline::rotate() {
    m_ready.push_back(std::move(m_open));
    m_open = Batch{};
    if (!m_spare.empty()) {
        m_open.spans = std::move(m_spare.back());
        m_spare.pop_back();
    }
}

void WirePipeline::export_batch(const Batch& batch) noexcept {
    try {
        if (send_batch(batch)) {
            return;
        }
    } catch (...) {
    }
    m_metrics.count_export_failed(m_signal_name); // counted here, where it failed
}

/// POSTs one batch; false (after logging why) when it did not arrive.
bool WirePipeline::send_batch(const Batch& batch) {
    // ExportTraceServiceRequest { resource_spans = 1 { resource = 1; scope_spans = 2 {
    // scope = 1; spans = 2 ... } } }: the framing before the spans, which are sent as they
    // were queued.
    const std::size_t scope_spans = m_scope_field.size() + batch.spans.size();
    const std::size_t resource_spans =
        m_resource_field.size() + 1 + varint_size(scope_spans) + scope_spans;
    WireBuffer head;
    put_tag(head, 1, k_len);
    put_varint(head, resource_spans);
    head += m_resource_field;
    put_tag(head, 2, k_len);
    put_varint(head, scope_spans);
    head += m_scope_field;
    std::string error;
    if (m_client->send(head.view(), batch.spans, error)) {
        return true;
    }
    // Reported in the SDK exporters' wording, for the log only (not counted from it).
    if (m_signal == Signal::traces) {
        OTEL_INTERNAL_LOG_ERROR("[OTLP TRACE HTTP Exporter] ERROR: Export "
                                << batch.count << " trace span(s) error: " << error);
    } else {
        OTEL_INTERNAL_LOG_ERROR("[OTLP LOG HTTP Exporter] ERROR: Export "
                                << batch.count << " log(s) error: " << error);
    }
    return false;
}

} // namespace labctl::taskapi
