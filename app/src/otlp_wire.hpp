#pragma once
// A span exporter that writes OTLP/HTTP protobuf itself (issue 3). The SDK's OtlpRecordable builds
// a protobuf object tree per span (a heap-allocated KeyValue, AnyValue and two strings per
// attribute), which the exporter thread then serialises and frees again: about 40k instructions
// per span, as much as the whole request without tracing. This recordable appends the protobuf
// wire encoding of each attribute to one buffer as it is set, and the exporter concatenates those
// buffers into the ExportTraceServiceRequest body and POSTs it with Poco.

#include <opentelemetry/sdk/trace/exporter.h>

#include <memory>

#include "config.hpp"

namespace labctl::taskapi {

class Metrics;

/// The wire exporter for `config.otlp_traces_endpoint`, or null when it does not apply (an
/// endpoint other than plain http://, or OTLP headers, compression or TLS settings in the
/// environment, which only the SDK exporter implements): then use the SDK's exporter.
/// Failures are reported like the SDK's ("[OTLP TRACE HTTP Exporter] ERROR: Export N trace
/// span(s) error ...", through the SDK's global log handler); `Shutdown` aborts an export in
/// flight.
std::unique_ptr<opentelemetry::sdk::trace::SpanExporter>
make_wire_span_exporter(const Config& config);

} // namespace labctl::taskapi
