// The wire tracer's sampler: which parent a span starts under (explicit or active context).
#include "wire_sampler.hpp"

#include <opentelemetry/context/runtime_context.h>
#include <opentelemetry/trace/context.h>
#include <opentelemetry/trace/span.h>

namespace labctl::taskapi::wire {

namespace otel = opentelemetry;
namespace trace = opentelemetry::trace;
namespace nostd = opentelemetry::nostd;

namespace {

/// The span context held by `context`, or an invalid one (trace::GetSpan would allocate a
/// DefaultSpan to say "none").
trace::SpanContext span_context_of(const otel::context::Context& context) {
    const auto value = context.GetValue(trace::kSpanKey);
    if (const auto* span = nostd::get_if<nostd::shared_ptr<trace::Span>>(&value)) {
        if (*span) {
            return (*span)->GetContext();
        }
    }
    return trace::SpanContext::GetInvalid();
}

} // namespace

trace::SpanContext parent_of(const trace::StartSpanOptions& options) {
    if (const auto* context = nostd::get_if<trace::SpanContext>(&options.parent)) {
        if (context->IsValid()) {
            return *context;
        }
        return span_context_of(otel::context::RuntimeContext::GetCurrent());
    }
    return span_context_of(nostd::get<otel::context::Context>(options.parent));
}

} // namespace labctl::taskapi::wire
