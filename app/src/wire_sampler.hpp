#pragma once
// The wire tracer's sampler: the parent a span starts under and the SDK's default decision,
// parent-based always-on.

#include <opentelemetry/trace/span_context.h>
#include <opentelemetry/trace/span_startoptions.h>

namespace labctl::taskapi::wire {

/// The parent a span starts under, as the SDK's tracer chooses it: an explicit valid
/// SpanContext, else the span of an explicit Context, else the active span; invalid for none.
opentelemetry::trace::SpanContext parent_of(const opentelemetry::trace::StartSpanOptions& options);

/// Parent-based always-on: a root span is sampled, a child follows its parent's decision (a
/// caller that did not sample the trace, traceparent flags 00, gets no span recorded either, and
/// the children inherit the decision through the unsampled context).
inline bool sampled(const opentelemetry::trace::SpanContext& parent) {
    return !parent.IsValid() || parent.IsSampled();
}

} // namespace labctl::taskapi::wire
