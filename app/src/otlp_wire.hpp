#pragma once
// Spans and log records through the OpenTelemetry trace and logs APIs, recorded straight as
// OTLP/HTTP protobuf (issue 3): the wire pipeline's public face, WireTracer and WireLogger.
// Its parts, one per file beside this one: wire_format.hpp (protobuf wire primitives),
// otlp_encode.* (AnyValue, attributes, resource, scope), wire_ids.* (id generator),
// wire_sampler.* (parent and sampling decision), wire_span.* (the recording span),
// wire_tracer.cpp, wire_logger.cpp (the log record and logger), wire_pipeline.* (bounded queue,
// batching, exporter thread), otlp_http.* (the OTLP/HTTP client with its retry), and
// otlp_wire.cpp (where the pipeline applies, and create()).
// With the SDK's tracer, batch processor and OTLP exporter a SERVER span costs about 42k
// instructions and a log record 37k-44k (tests/bench/api/instr.sh, 2026-12-02; app/README.md has
// the figures), more than the 33k of a cached GET /api/tasks without telemetry: a span object with
// a mutex and an attribute map, a MultiRecordable that dynamic_casts on every attribute, then a
// protobuf object tree per item that the exporter thread serialises again. WireTracer and
// WireLogger implement the API's Tracer/Span and Logger/LogRecord themselves: each item appends the
// wire encoding of its fields to one buffer as they are set, End()/EmitLogRecord() hand the bytes
// to a bounded queue, and an exporter thread wraps queued items in one Export*ServiceRequest and
// POSTs it with Poco (about 3.2k instructions per span and 2.6k per log record, export included).
// Sampling is the SDK's default, parent-based always-on: a caller's "not sampled" decision
// (traceparent flags 00) is kept, no span is recorded and children inherit the decision.

#include <opentelemetry/logs/logger.h>
#include <opentelemetry/sdk/resource/resource.h>
#include <opentelemetry/trace/tracer.h>

#include <chrono>
#include <memory>

#include "config.hpp"

namespace labctl::taskapi {

class Metrics;
class WirePipeline; // the bounded queue and the exporter thread of one signal (wire_pipeline.hpp)

/// Each recording span shares ownership of its tracer's pipeline (the queue and exporter
/// thread), as the SDK's spans hold a shared_ptr to their tracer: a span may outlive the tracer
/// (ended later, it is dropped and counted in otel_export_dropped_total, like any span ended
/// after shutdown) without touching freed memory, whatever the order of destruction.
class WireTracer final : public opentelemetry::trace::Tracer {
public:
    /// The tracer for `config.otlp_traces_endpoint`, or null when it does not apply (an endpoint
    /// other than plain http://, OTLP headers, compression or TLS settings in the environment,
    /// which only the SDK's exporter implements, or LABCTL_TASKAPI_SDK_EXPORTERS set): then
    /// the SDK's tracer and exporter are used. At most `config.export_queue_size` spans are
    /// queued or in flight; beyond that they are dropped and counted in `metrics`. A failed export
    /// is counted in `metrics` (otel_export_failed_batches_total) where it fails, and reported
    /// like the SDK's ("[OTLP TRACE HTTP Exporter] ERROR: Export N trace span(s) error ...")
    /// through the SDK's global log handler.
    static std::shared_ptr<WireTracer>
    create(const Config& config, const opentelemetry::sdk::resource::Resource& resource,
           Metrics& metrics);
    ~WireTracer() override;
    WireTracer(const WireTracer&) = delete;
    WireTracer& operator=(const WireTracer&) = delete;

    using opentelemetry::trace::Tracer::StartSpan; // the API's convenience overloads
    opentelemetry::nostd::shared_ptr<opentelemetry::trace::Span>
    StartSpan(opentelemetry::nostd::string_view name,
              const opentelemetry::common::KeyValueIterable& attributes,
              const opentelemetry::trace::SpanContextKeyValueIterable& links,
              const opentelemetry::trace::StartSpanOptions& options) noexcept override;
    void ForceFlushWithMicroseconds(uint64_t timeout) noexcept override;
    void CloseWithMicroseconds(uint64_t timeout) noexcept override;

    /// Exports what is queued; false if `timeout` passed first.
    bool flush(std::chrono::microseconds timeout) noexcept;
    /// Flushes (bounded by `timeout`), then stops the exporter thread, aborting an export still
    /// waiting on a slow collector. Spans ended afterwards are dropped.
    void shutdown(std::chrono::microseconds timeout) noexcept;

private:
    explicit WireTracer(std::shared_ptr<WirePipeline> pipeline);
    std::shared_ptr<WirePipeline> m_pipeline;
};

class WireLogger final : public opentelemetry::logs::Logger {
public:
    /// The logger for `config.otlp_logs_endpoint`, or null when it does not apply (as
    /// WireTracer::create, with the LOGS variants of the settings). Bounded and counted as the
    /// tracer; failures are reported like the SDK's ("[OTLP LOG HTTP Exporter] ERROR: Export N
    /// log(s) error ...").
    static std::shared_ptr<WireLogger>
    create(const Config& config, const opentelemetry::sdk::resource::Resource& resource,
           Metrics& metrics);
    ~WireLogger() override;
    WireLogger(const WireLogger&) = delete;
    WireLogger& operator=(const WireLogger&) = delete;

    using opentelemetry::logs::Logger::EmitLogRecord; // the API's convenience overloads
    const opentelemetry::nostd::string_view GetName() noexcept override;
    opentelemetry::nostd::unique_ptr<opentelemetry::logs::LogRecord>
    CreateLogRecord() noexcept override;
    void EmitLogRecord(opentelemetry::nostd::unique_ptr<opentelemetry::logs::LogRecord>&&
                           record) noexcept override;

    bool flush(std::chrono::microseconds timeout) noexcept;
    void shutdown(std::chrono::microseconds timeout) noexcept;

private:
    explicit WireLogger(std::shared_ptr<WirePipeline> pipeline);
    std::shared_ptr<WirePipeline> m_pipeline;
};

} // namespace labctl::taskapi
