#include "telemetry.hpp"

#include <opentelemetry/exporters/otlp/otlp_http_exporter_factory.h>
#include <opentelemetry/exporters/otlp/otlp_http_exporter_options.h>
#include <opentelemetry/exporters/otlp/otlp_http_log_record_exporter_factory.h>
#include <opentelemetry/exporters/otlp/otlp_http_log_record_exporter_options.h>
#include <opentelemetry/logs/noop.h>
#include <opentelemetry/sdk/common/global_log_handler.h>
#include <opentelemetry/sdk/logs/batch_log_record_processor_factory.h>
#include <opentelemetry/sdk/logs/batch_log_record_processor_options.h>
#include <opentelemetry/sdk/logs/exporter.h>
#include <opentelemetry/sdk/logs/logger_provider.h>
#include <opentelemetry/sdk/logs/processor.h>
#include <opentelemetry/sdk/logs/recordable.h>
#include <opentelemetry/sdk/resource/resource.h>
#include <opentelemetry/sdk/resource/resource_detector.h>
#include <opentelemetry/sdk/trace/batch_span_processor_factory.h>
#include <opentelemetry/sdk/trace/batch_span_processor_options.h>
#include <opentelemetry/sdk/trace/exporter.h>
#include <opentelemetry/sdk/trace/processor.h>
#include <opentelemetry/sdk/trace/samplers/always_on.h>
#include <opentelemetry/sdk/trace/samplers/parent.h>
#include <opentelemetry/sdk/trace/tracer_provider.h>
#include <opentelemetry/trace/noop.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "json_text.hpp"
#include "metrics.hpp"
#include "otlp_wire.hpp"
#include "sdk_export.hpp"

namespace labctl::taskapi {

namespace otel = opentelemetry;
namespace sdktrace = opentelemetry::sdk::trace;
namespace sdklogs = opentelemetry::sdk::logs;
using otel::sdk::common::ExportResult;

namespace {

/// Items per OTLP request: smaller than the SDK default (512) to keep the serialised request
/// buffers, and so the peak RSS under load, small.
constexpr std::size_t k_export_batch = 256;

/// Items handed to a batch processor and not yet through its exporter. The processors' own
/// queues are made larger than this bound, so they never drop silently: we drop (and count)
/// before them.
class QueueBudget {
public:
    QueueBudget(std::size_t capacity, Metrics& metrics, std::string signal)
        : m_capacity(capacity), m_metrics(metrics), m_signal(std::move(signal)) {}

    bool try_acquire() {
        std::size_t cur = m_used.load(std::memory_order_relaxed);
        do {
            if (cur >= m_capacity) {
                m_metrics.count_export_dropped(m_signal);
                return false;
            }
        } while (!m_used.compare_exchange_weak(cur, cur + 1, std::memory_order_relaxed));
        return true;
    }
    void release(std::size_t n) {
        std::size_t cur = m_used.load(std::memory_order_relaxed);
        while (
            !m_used.compare_exchange_weak(cur, cur >= n ? cur - n : 0, std::memory_order_relaxed)) {
        }
    }

private:
    std::size_t m_capacity;
    std::atomic<std::size_t> m_used{0};
    Metrics& m_metrics;
    std::string m_signal;
};

// Releases the queue budget once a batch has been exported (or has failed); the same for spans
// and log records, whose exporter interfaces differ only in their types.
template <typename Exporter, typename Recordable>
class BudgetedExporter final : public Exporter {
public:
    BudgetedExporter(std::unique_ptr<Exporter> inner, std::shared_ptr<QueueBudget> budget)
        : m_inner(std::move(inner)), m_budget(std::move(budget)) {}
    std::unique_ptr<Recordable> MakeRecordable() noexcept override {
        return m_inner->MakeRecordable();
    }
    ExportResult
    Export(const otel::nostd::span<std::unique_ptr<Recordable>>& batch) noexcept override {
        const std::size_t n = batch.size();
        const ExportResult result = m_inner->Export(batch);
        m_budget->release(n);
        return result;
    }
    bool ForceFlush(std::chrono::microseconds timeout) noexcept override {
        return m_inner->ForceFlush(timeout);
    }
    bool Shutdown(std::chrono::microseconds timeout) noexcept override {
        return m_shut.exchange(true) ? true : m_inner->Shutdown(timeout);
    }

private:
    std::atomic<bool> m_shut{false};
    std::unique_ptr<Exporter> m_inner;
    std::shared_ptr<QueueBudget> m_budget;
};
using BudgetedSpanExporter = BudgetedExporter<sdktrace::SpanExporter, sdktrace::Recordable>;
using BudgetedLogExporter = BudgetedExporter<sdklogs::LogRecordExporter, sdklogs::Recordable>;

class BudgetedSpanProcessor final : public sdktrace::SpanProcessor {
public:
    BudgetedSpanProcessor(std::unique_ptr<sdktrace::SpanProcessor> inner,
                          std::shared_ptr<QueueBudget> budget)
        : m_inner(std::move(inner)), m_budget(std::move(budget)) {}
    std::unique_ptr<sdktrace::Recordable> MakeRecordable() noexcept override {
        return m_inner->MakeRecordable();
    }
    void OnStart(sdktrace::Recordable& span,
                 const otel::trace::SpanContext& parent) noexcept override {
        m_inner->OnStart(span, parent);
    }
    void OnEnd(std::unique_ptr<sdktrace::Recordable>&& span) noexcept override {
        if (m_budget->try_acquire()) {
            m_inner->OnEnd(std::move(span));
        }
    }
    bool ForceFlush(std::chrono::microseconds timeout) noexcept override {
        return m_inner->ForceFlush(timeout);
    }
    bool Shutdown(std::chrono::microseconds timeout) noexcept override {
        return m_inner->Shutdown(timeout);
    }

private:
    std::unique_ptr<sdktrace::SpanProcessor> m_inner;
    std::shared_ptr<QueueBudget> m_budget;
};

class BudgetedLogProcessor final : public sdklogs::LogRecordProcessor {
public:
    BudgetedLogProcessor(std::unique_ptr<sdklogs::LogRecordProcessor> inner,
                         std::shared_ptr<QueueBudget> budget)
        : m_inner(std::move(inner)), m_budget(std::move(budget)) {}
    std::unique_ptr<sdklogs::Recordable> MakeRecordable() noexcept override {
        return m_inner->MakeRecordable();
    }
    void OnEmit(std::unique_ptr<sdklogs::Recordable>&& record) noexcept override {
        if (m_budget->try_acquire()) {
            m_inner->OnEmit(std::move(record));
        }
    }
    bool ForceFlush(std::chrono::microseconds timeout) noexcept override {
        return m_inner->ForceFlush(timeout);
    }
    bool Shutdown(std::chrono::microseconds timeout) noexcept override {
        return m_inner->Shutdown(timeout);
    }

private:
    std::unique_ptr<sdklogs::LogRecordProcessor> m_inner;
    std::shared_ptr<QueueBudget> m_budget;
};

/// The SDK's own diagnostics (export failures while the collector is down, ...) as JSON lines
/// on stdout, at most one per 10 s so a dead collector cannot flood the log. Only a log: the
/// failure counters are fed where exports fail (wire_pipeline.cpp, sdk_export.cpp), not from text.
class RateLimitedLogHandler final : public otel::sdk::common::internal_log::LogHandler {
public:
    void Handle(otel::sdk::common::internal_log::LogLevel level, const char*, int, const char* msg,
                const otel::sdk::common::AttributeMap&) noexcept override {
        using Clock = std::chrono::steady_clock;
        const auto now = Clock::now().time_since_epoch().count();
        auto last = m_last.load();
        if (last != 0 &&
            now - last <
                std::chrono::duration_cast<Clock::duration>(std::chrono::seconds(10)).count()) {
            m_suppressed.fetch_add(1);
            return;
        }
        if (!m_last.compare_exchange_strong(last, now)) {
            m_suppressed.fetch_add(1);
            return;
        }
        try {
            std::string line = "{\"level\":\"";
            line += level == otel::sdk::common::internal_log::LogLevel::Error ? "error" : "warn";
            line += "\",\"message\":";
            append_json_string(line, std::string("opentelemetry: ") + (msg != nullptr ? msg : ""));
            line +=
                ",\"suppressed_since_last\":" + std::to_string(m_suppressed.exchange(0)) + "}\n";
            std::fwrite(line.data(), 1, line.size(), stdout);
            std::fflush(stdout);
        } catch (...) {
        }
    }

private:
    std::atomic<std::chrono::steady_clock::rep> m_last{0};
    std::atomic<std::uint64_t> m_suppressed{0};
};

otel::sdk::resource::Resource make_resource(const Config& config) {
    using otel::sdk::resource::Resource;
    using otel::sdk::resource::ResourceAttributes;
    // Precedence: our defaults < OTEL_RESOURCE_ATTRIBUTES < OTEL_SERVICE_NAME.
    const ResourceAttributes defaults = {
        {"service.name", std::string("task-api")},
        {"service.version", config.service_version},
        {"deployment.environment", config.deployment_environment},
        {"deployment.environment.name", config.deployment_environment},
        {"telemetry.sdk.language", std::string("cpp")},
        {"telemetry.sdk.name", std::string("opentelemetry")},
        {"telemetry.sdk.version", std::string(OPENTELEMETRY_SDK_VERSION)},
    };
    Resource resource = Resource::Create(defaults);
    resource = resource.Merge(otel::sdk::resource::OTELResourceDetector().Detect());
    if (std::getenv("OTEL_SERVICE_NAME") != nullptr) {
        resource = resource.Merge(Resource::Create({{"service.name", config.service_name}}));
    }
    return resource;
}

/// The SDK path's OTLP/HTTP exporter options, alike for traces and logs (`O` is the signal's
/// options type): protobuf to `url`, our timeout, one retry.
template <class O>
O sdk_exporter_options(const std::string& url, const Config& config) {
    O o;
    o.url = url;
    o.content_type = otel::exporter::otlp::HttpRequestContentType::kBinary;
    o.timeout = config.otlp_timeout;
    o.retry_policy_max_attempts = 2;
    return o;
}

/// The SDK path's batch processor options, alike for traces and logs (`B` is the signal's options
/// type): a queue larger than the QueueBudget, so only the budget drops; our delay and batch size.
template <class B>
B sdk_batch_options(const Config& config) {
    B b;
    b.max_queue_size = config.export_queue_size + 64;
    b.schedule_delay_millis = config.export_delay;
    b.max_export_batch_size = std::min<std::size_t>(k_export_batch, config.export_queue_size);
    return b;
}

} // namespace

namespace {
thread_local const otel::trace::SpanContext* t_request_span = nullptr;
} // namespace

RequestSpanScope::RequestSpanScope(const otel::trace::SpanContext& context)
    : m_previous(t_request_span) {
    t_request_span = &context;
}

RequestSpanScope::~RequestSpanScope() {
    t_request_span = m_previous;
}

const otel::trace::SpanContext* RequestSpanScope::current() {
    return t_request_span;
}

struct Telemetry::Providers {
    std::shared_ptr<WireTracer> wire_tracer;       // or, when it does not apply:
    BudgetedSpanExporter* span_exporter = nullptr; // owned by the tracer provider
    std::shared_ptr<WireLogger> wire_logger;       // or, when it does not apply:
    BudgetedLogExporter* log_exporter = nullptr;   // owned by the logger provider
    std::shared_ptr<sdktrace::TracerProvider> tracer_provider;
    std::shared_ptr<sdklogs::LoggerProvider> logger_provider;
};

Telemetry::Telemetry(const Config& config, Metrics& metrics) {
    if (!config.otel_enabled) {
        // Noop spans need their tracer owned by a std::shared_ptr (shared_from_this).
        m_tracer = otel::nostd::shared_ptr<otel::trace::Tracer>(
            std::shared_ptr<otel::trace::Tracer>(std::make_shared<otel::trace::NoopTracer>()));
        m_logger = otel::nostd::shared_ptr<otel::logs::Logger>(
            std::shared_ptr<otel::logs::Logger>(std::make_shared<otel::logs::NoopLogger>()));
        return;
    }
    m_enabled = true;
    otel::sdk::common::internal_log::GlobalLogHandler::SetLogHandler(
        otel::nostd::shared_ptr<otel::sdk::common::internal_log::LogHandler>(
            new RateLimitedLogHandler()));
    otel::sdk::common::internal_log::GlobalLogHandler::SetLogLevel(
        otel::sdk::common::internal_log::LogLevel::Warning);
    const auto resource = make_resource(config);

    // Traces: our API tracer where it applies (plain http://, no SDK-only settings); the SDK's
    // tracer and exporter otherwise (otlp_wire.hpp says why).
    m_providers = std::make_unique<Providers>();
    m_providers->wire_tracer = WireTracer::create(config, resource, metrics);
    std::unique_ptr<sdktrace::SpanProcessor> span_processor;
    if (!m_providers->wire_tracer) {
        const auto trace_opts = sdk_exporter_options<otel::exporter::otlp::OtlpHttpExporterOptions>(
            config.otlp_traces_endpoint, config);
        auto trace_budget =
            std::make_shared<QueueBudget>(config.export_queue_size, metrics, std::string("traces"));
        auto span_exporter = std::make_unique<BudgetedSpanExporter>(
            make_counting_span_exporter(trace_opts, metrics), trace_budget);
        m_providers->span_exporter = span_exporter.get();
        span_processor = std::make_unique<BudgetedSpanProcessor>(
            sdktrace::BatchSpanProcessorFactory::Create(
                std::move(span_exporter),
                sdk_batch_options<sdktrace::BatchSpanProcessorOptions>(config)),
            trace_budget);
    }

    // Logs: the same choice.
    m_providers->wire_logger = WireLogger::create(config, resource, metrics);
    std::unique_ptr<sdklogs::LogRecordProcessor> log_processor;
    if (!m_providers->wire_logger) {
        const auto log_opts =
            sdk_exporter_options<otel::exporter::otlp::OtlpHttpLogRecordExporterOptions>(
                config.otlp_logs_endpoint, config);
        auto log_budget =
            std::make_shared<QueueBudget>(config.export_queue_size, metrics, std::string("logs"));
        auto log_exporter = std::make_unique<BudgetedLogExporter>(
            make_counting_log_exporter(log_opts, metrics), log_budget);
        m_providers->log_exporter = log_exporter.get();
        log_processor = std::make_unique<BudgetedLogProcessor>(
            sdklogs::BatchLogRecordProcessorFactory::Create(
                std::move(log_exporter),
                sdk_batch_options<sdklogs::BatchLogRecordProcessorOptions>(config)),
            log_budget);
    }

    if (span_processor) {
        // Parent-based always-on, as the wire tracer (the SDK's provider defaults to always-on,
        // which would record spans the caller chose not to sample).
        m_providers->tracer_provider = std::make_shared<sdktrace::TracerProvider>(
            std::move(span_processor), resource,
            std::make_unique<sdktrace::ParentBasedSampler>(
                std::make_shared<sdktrace::AlwaysOnSampler>()));
    }
    if (log_processor) {
        m_providers->logger_provider =
            std::make_shared<sdklogs::LoggerProvider>(std::move(log_processor), resource);
    }
    if (m_providers->wire_tracer) {
        m_tracer = otel::nostd::shared_ptr<otel::trace::Tracer>(
            std::shared_ptr<otel::trace::Tracer>(m_providers->wire_tracer));
    } else {
        m_tracer =
            m_providers->tracer_provider->GetTracer("labctl-taskapi", config.service_version);
    }
    if (m_providers->wire_logger) {
        m_logger = otel::nostd::shared_ptr<otel::logs::Logger>(
            std::shared_ptr<otel::logs::Logger>(m_providers->wire_logger));
    } else {
        m_logger = m_providers->logger_provider->GetLogger("labctl-taskapi", "labctl-taskapi",
                                                           config.service_version);
    }
}

Telemetry::~Telemetry() {
    shutdown(std::chrono::milliseconds(2000));
}

void Telemetry::shutdown(std::chrono::milliseconds timeout) {
    if (!m_providers) {
        return;
    }
    const auto half = std::chrono::duration_cast<std::chrono::microseconds>(timeout) / 2;
    if (m_providers->wire_tracer) {
        m_providers->wire_tracer->flush(half);
    } else {
        m_providers->tracer_provider->ForceFlush(half);
    }
    if (m_providers->wire_logger) {
        m_providers->wire_logger->flush(half);
    } else {
        m_providers->logger_provider->ForceFlush(half);
    }
    // Stop the exporters first: that aborts an export still waiting on a slow collector, so
    // joining the processors' threads below cannot hang.
    if (m_providers->wire_tracer) {
        m_providers->wire_tracer->shutdown(std::chrono::microseconds(0));
    } else {
        m_providers->span_exporter->Shutdown(std::chrono::microseconds(100'000));
        m_providers->tracer_provider->Shutdown(std::chrono::microseconds(100'000));
    }
    if (m_providers->wire_logger) {
        m_providers->wire_logger->shutdown(std::chrono::microseconds(0));
    } else {
        m_providers->log_exporter->Shutdown(std::chrono::microseconds(100'000));
        m_providers->logger_provider->Shutdown(std::chrono::microseconds(100'000));
    }
    m_providers.reset();
}

} // namespace labctl::taskapi
