#pragma once
// OpenTelemetry traces and logs over OTLP/HTTP protobuf, with bounded export queues whose drops
// are counted in Metrics. Export trouble never blocks or fails a request: spans and log records
// are handed to batch processors; when the queue is full they are dropped (and counted).

#include <opentelemetry/logs/logger.h>
#include <opentelemetry/nostd/shared_ptr.h>
#include <opentelemetry/trace/span_context.h>
#include <opentelemetry/trace/tracer.h>

#include <chrono>
#include <memory>

#include "config.hpp"

namespace labctl::taskapi {

class Metrics;

/// Makes `context` (a request's SERVER span) the parent of the CLIENT spans this thread starts
/// until destroyed. Cheaper than activating the span in the RuntimeContext (Tracer::
/// WithActiveSpan), whose Scope allocates a context node and a token per request.
class RequestSpanScope {
public:
    explicit RequestSpanScope(const opentelemetry::trace::SpanContext& context);
    ~RequestSpanScope();
    RequestSpanScope(const RequestSpanScope&) = delete;
    RequestSpanScope& operator=(const RequestSpanScope&) = delete;

    /// The innermost request span of this thread, or null.
    static const opentelemetry::trace::SpanContext* current();

private:
    const opentelemetry::trace::SpanContext* m_previous;
};

class Telemetry {
public:
    /// With `config.otel_enabled == false` every tracer/logger is a no-op.
    Telemetry(const Config& config, Metrics& metrics);
    ~Telemetry();
    Telemetry(const Telemetry&) = delete;
    Telemetry& operator=(const Telemetry&) = delete;

    bool enabled() const { return m_enabled; }
    opentelemetry::trace::Tracer& tracer() { return *m_tracer; }
    opentelemetry::logs::Logger& logger() { return *m_logger; }

    /// Flushes what is queued (bounded by `timeout` in total) and stops the exporters.
    void shutdown(std::chrono::milliseconds timeout);

private:
    struct Providers;
    bool m_enabled = false;
    std::unique_ptr<Providers> m_providers;
    opentelemetry::nostd::shared_ptr<opentelemetry::trace::Tracer> m_tracer;
    opentelemetry::nostd::shared_ptr<opentelemetry::logs::Logger> m_logger;
};

} // namespace labctl::taskapi
