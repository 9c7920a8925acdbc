// WireTracer: the API's Tracer over the wire pipeline (parent and sampling decision, new ids,
// a WireSpan per recorded span); created in otlp_wire.cpp.
#include <opentelemetry/trace/default_span.h>

#include <array>
#include <cstdint>
#include <cstring>

#include "otlp_wire.hpp"
#include "wire_ids.hpp"
#include "wire_pipeline.hpp"
#include "wire_sampler.hpp"
#include "wire_span.hpp"

namespace labctl::taskapi {

namespace otel = opentelemetry;
namespace trace = opentelemetry::trace;
namespace nostd = opentelemetry::nostd;
using namespace wire;

WireTracer::WireTracer(std::shared_ptr<WirePipeline> pipeline) : m_pipeline(std::move(pipeline)) {}

WireTracer::~WireTracer() {
    shutdown(std::chrono::microseconds(0));
}

nostd::shared_ptr<trace::Span>
WireTracer::StartSpan(nostd::string_view name, const otel::common::KeyValueIterable& attributes,
                      const trace::SpanContextKeyValueIterable& links,
                      const trace::StartSpanOptions& options) noexcept {
    try {
        const trace::SpanContext parent = parent_of(options);
        std::array<std::uint8_t, 16> trace_id{};
        if (parent.IsValid()) {
            std::memcpy(trace_id.data(), parent.trace_id().Id().data(), trace_id.size());
        } else {
            put_id64(trace_id.data(), random_id64());
            put_id64(trace_id.data() + 8, random_id64());
        }
        std::array<std::uint8_t, 8> span_id{};
        put_id64(span_id.data(), random_id64());
        const trace::TraceId tid(nostd::span<const std::uint8_t, 16>(trace_id.data(), 16));
        const trace::SpanId sid(nostd::span<const std::uint8_t, 8>(span_id.data(), 8));
        const auto state =
            parent.IsValid() ? parent.trace_state() : trace::TraceState::GetDefault();
        // Parent-based always-on (wire_sampler.hpp): a caller that did not sample this trace
        // gets no span from us either, and the children inherit the decision through the
        // (unsampled) context.
        if (!sampled(parent)) {
            return nostd::shared_ptr<trace::Span>(std::make_shared<trace::DefaultSpan>(
                trace::SpanContext(tid, sid, trace::TraceFlags(0), false, state)));
        }
        const trace::SpanContext context(tid, sid, trace::TraceFlags(trace::TraceFlags::kIsSampled),
                                         false, state);
        return nostd::shared_ptr<trace::Span>(std::make_shared<WireSpan>(
            m_pipeline, context, parent, name, attributes, links, options));
    } catch (...) {
        return nostd::shared_ptr<trace::Span>(
            std::make_shared<trace::DefaultSpan>(trace::SpanContext::GetInvalid()));
    }
}

void WireTracer::ForceFlushWithMicroseconds(uint64_t timeout) noexcept {
    flush(std::chrono::microseconds(static_cast<std::int64_t>(timeout)));
}

void WireTracer::CloseWithMicroseconds(uint64_t timeout) noexcept {
    shutdown(std::chrono::microseconds(static_cast<std::int64_t>(timeout)));
}

bool WireTracer::flush(std::chrono::microseconds timeout) noexcept {
    return m_pipeline->flush(timeout);
}

void WireTracer::shutdown(std::chrono::microseconds timeout) noexcept {
    m_pipeline->stop(timeout);
}

} // namespace labctl::taskapi
