#include "sdk_export.hpp"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <opentelemetry/exporters/otlp/otlp_http_client.h>
#include <opentelemetry/exporters/otlp/otlp_http_exporter_factory.h>
#include <opentelemetry/exporters/otlp/otlp_http_log_record_exporter_factory.h>
#include <opentelemetry/exporters/otlp/otlp_recordable_utils.h>

#include <string>

#include "metrics.hpp"

namespace labctl::taskapi {

namespace otel = opentelemetry;
namespace otlp = opentelemetry::exporter::otlp;
using otel::sdk::common::ExportResult;

namespace {

/// The OtlpHttpClient options the SDK's exporter makes from its own options (its constructor).
template <typename Options>
otlp::OtlpHttpClientOptions client_options(const Options& o) {
    return otlp::OtlpHttpClientOptions(
        o.url, o.ssl_insecure_skip_verify, o.ssl_ca_cert_path, o.ssl_ca_cert_string,
        o.ssl_client_key_path, o.ssl_client_key_string, o.ssl_client_cert_path,
        o.ssl_client_cert_string, o.ssl_min_tls, o.ssl_max_tls, o.ssl_cipher, o.ssl_cipher_suite,
        o.content_type, o.json_bytes_mapping, o.compression, o.use_json_name, o.console_debug,
        o.timeout, o.http_headers, o.retry_policy_max_attempts, o.retry_policy_initial_backoff,
        o.retry_policy_max_backoff, o.retry_policy_backoff_multiplier,
        std::shared_ptr<otel::sdk::common::ThreadInstrumentation>(nullptr));
}

/// The generated protobuf class `type` (linked into the process by the SDK's proto library,
/// whose headers Debian does not ship), made through the generated pool.
std::unique_ptr<google::protobuf::Message> new_message(const char* type) {
    const auto* descriptor =
        google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(type);
    if (descriptor == nullptr) {
        return nullptr;
    }
    const auto* prototype =
        google::protobuf::MessageFactory::generated_factory()->GetPrototype(descriptor);
    return std::unique_ptr<google::protobuf::Message>(prototype != nullptr ? prototype->New()
                                                                           : nullptr);
}

/// `Base` is SpanExporter or LogRecordExporter; `Request` the matching Export*ServiceRequest,
/// named `k_type`. The SDK's exporter still makes the recordables (OtlpRecordable needs the
/// protobuf headers); the request goes through our own client, whose result we keep.
template <typename Base, typename Recordable, typename Request>
class CountingExporter final : public Base {
public:
    CountingExporter(std::unique_ptr<Base> recordables, otlp::OtlpHttpClientOptions&& options,
                     const char* request_type, Metrics& metrics, std::string signal)
        : m_recordables(std::move(recordables)),
          m_client(std::make_unique<otlp::OtlpHttpClient>(std::move(options))),
          m_request_type(request_type), m_metrics(metrics), m_signal(std::move(signal)) {}

    std::unique_ptr<Recordable> MakeRecordable() noexcept override {
        return m_recordables->MakeRecordable();
    }

    ExportResult
    Export(const otel::nostd::span<std::unique_ptr<Recordable>>& batch) noexcept override {
        if (batch.empty()) {
            return ExportResult::kSuccess;
        }
        ExportResult result = ExportResult::kFailure;
        try {
            if (auto request = new_message(m_request_type)) {
                // The generated class derives from Message alone: the same address.
                otlp::OtlpRecordableUtils::PopulateRequest(
                    batch, reinterpret_cast<Request*>(request.get()));
                result = m_client->Export(*request);
            }
        } catch (...) {
            result = ExportResult::kFailure;
        }
        if (result != ExportResult::kSuccess) {
            m_metrics.count_export_failed(m_signal);
        }
        return result;
    }

    bool ForceFlush(std::chrono::microseconds timeout) noexcept override {
        return m_client->ForceFlush(timeout);
    }
    bool Shutdown(std::chrono::microseconds timeout) noexcept override {
        const bool ok = m_client->Shutdown(timeout);
        return m_recordables->Shutdown(timeout) && ok;
    }

private:
    std::unique_ptr<Base> m_recordables;
    std::unique_ptr<otlp::OtlpHttpClient> m_client;
    const char* m_request_type;
    Metrics& m_metrics;
    std::string m_signal;
};

} // namespace

} // namespace labctl::taskapi

// Declared, not defined: the classes live in the SDK's proto library.
namespace opentelemetry::proto::collector::trace::v1 {
class ExportTraceServiceRequest;
}
namespace opentelemetry::proto::collector::logs::v1 {
class ExportLogsServiceRequest;
}

namespace labctl::taskapi {

std::unique_ptr<otel::sdk::trace::SpanExporter>
make_counting_span_exporter(const otlp::OtlpHttpExporterOptions& options, Metrics& metrics) {
    using Exporter = CountingExporter<otel::sdk::trace::SpanExporter, otel::sdk::trace::Recordable,
                                      otel::proto::collector::trace::v1::ExportTraceServiceRequest>;
    return std::make_unique<Exporter>(
        otlp::OtlpHttpExporterFactory::Create(options), client_options(options),
        "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest", metrics, "traces");
}

std::unique_ptr<otel::sdk::logs::LogRecordExporter>
make_counting_log_exporter(const otlp::OtlpHttpLogRecordExporterOptions& options,
                           Metrics& metrics) {
    using Exporter =
        CountingExporter<otel::sdk::logs::LogRecordExporter, otel::sdk::logs::Recordable,
                         otel::proto::collector::logs::v1::ExportLogsServiceRequest>;
    return std::make_unique<Exporter>(
        otlp::OtlpHttpLogRecordExporterFactory::Create(options), client_options(options),
        "opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest", metrics, "logs");
}

} // namespace labctl::taskapi
