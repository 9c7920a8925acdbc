#pragma once
// The SDK pipeline's OTLP/HTTP exporters, with the export result kept: opentelemetry-cpp 1.19's
// OtlpHttpExporter and OtlpHttpLogRecordExporter log a failed export and return kSuccess anyway,
// so neither the batch processor nor we could tell. These send the same request through the
// SDK's own OtlpHttpClient (same options: TLS, headers, compression, retries) and return what it
// returned; a failed batch is counted in otel_export_failed_batches_total where it failed.

#include <opentelemetry/exporters/otlp/otlp_http_exporter_options.h>
#include <opentelemetry/exporters/otlp/otlp_http_log_record_exporter_options.h>
#include <opentelemetry/sdk/logs/exporter.h>
#include <opentelemetry/sdk/trace/exporter.h>

#include <memory>

namespace labctl::taskapi {

class Metrics;

std::unique_ptr<opentelemetry::sdk::trace::SpanExporter>
make_counting_span_exporter(const opentelemetry::exporter::otlp::OtlpHttpExporterOptions& options,
                            Metrics& metrics);

std::unique_ptr<opentelemetry::sdk::logs::LogRecordExporter> make_counting_log_exporter(
    const opentelemetry::exporter::otlp::OtlpHttpLogRecordExporterOptions& options,
    Metrics& metrics);

} // namespace labctl::taskapi
