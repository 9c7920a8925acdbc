// WireLogger: the API's Logger over the wire pipeline, and its LogRecord, encoded to an OTLP
// LogRecord message as its fields are set; created in otlp_wire.cpp.
#include <opentelemetry/logs/log_record.h>
#include <opentelemetry/logs/severity.h>

#include <chrono>
#include <cstdint>
#include <iterator>

#include "otlp_encode.hpp"
#include "otlp_wire.hpp"
#include "wire_pipeline.hpp"

namespace labctl::taskapi {

namespace otel = opentelemetry;
namespace trace = opentelemetry::trace;
namespace nostd = opentelemetry::nostd;
using namespace wire;

namespace {

/// One log record: the LogRecord message, encoded as its fields are set.
class WireLogRecord final : public otel::logs::LogRecord {
public:
    // The API's setters are noexcept and appending can allocate: each one goes through
    // guarded(), and a record that missed a field (out of memory) is dropped and counted.
    void SetTimestamp(otel::common::SystemTimestamp timestamp) noexcept override {
        guarded([&] { put_fixed64(m_buf, 1, unix_nanos(timestamp)); });
    }
    void SetObservedTimestamp(otel::common::SystemTimestamp timestamp) noexcept override {
        guarded([&] { put_fixed64(m_buf, 11, unix_nanos(timestamp)); });
    }
    void SetSeverity(otel::logs::Severity severity) noexcept override {
        guarded([&] {
            // severity_number = 2 and, as the SDK's recordable, its name as severity_text = 3.
            put_uint(m_buf, 2, static_cast<std::uint64_t>(severity));
            const auto index = static_cast<std::size_t>(severity);
            if (index < std::size(otel::logs::SeverityNumToText)) {
                const auto text = otel::logs::SeverityNumToText[index];
                put_bytes(m_buf, 3, std::string_view(text.data(), text.size()));
            }
        });
    }
    void SetBody(const otel::common::AttributeValue& message) noexcept override {
        guarded([&] {
            WireBuffer body; // AnyValue
            any_value(body, message);
            put_bytes(m_buf, 5, body.view());
        });
    }
    void SetAttribute(nostd::string_view key,
                      const otel::common::AttributeValue& value) noexcept override {
        guarded([&] { put_attribute(m_buf, 6, key, value); });
    }
    void SetEventId(int64_t, nostd::string_view name) noexcept override {
        if (!name.empty()) {
            guarded([&] { put_bytes(m_buf, 12, std::string_view(name.data(), name.size())); });
        }
    }
    void SetTraceId(const trace::TraceId& id) noexcept override {
        guarded([&] { put_bytes(m_buf, 9, id_bytes(id.Id().data(), 16)); });
    }
    void SetSpanId(const trace::SpanId& id) noexcept override {
        guarded([&] { put_bytes(m_buf, 10, id_bytes(id.Id().data(), 8)); });
    }
    void SetTraceFlags(const trace::TraceFlags& flags) noexcept override {
        guarded([&] { put_fixed32(m_buf, 8, flags.flags()); });
    }

    bool complete() const { return !m_incomplete; }
    std::string_view encoded() const { return m_buf.view(); }

private:
    template <typename F>
    void guarded(F&& append) noexcept {
        try {
            append();
        } catch (...) {
            m_incomplete = true;
        }
    }

    WireBuffer m_buf;
    bool m_incomplete = false;
};

} // namespace

WireLogger::WireLogger(std::shared_ptr<WirePipeline> pipeline) : m_pipeline(std::move(pipeline)) {}

WireLogger::~WireLogger() {
    shutdown(std::chrono::microseconds(0));
}

const nostd::string_view WireLogger::GetName() noexcept {
    return "labctl-taskapi";
}

nostd::unique_ptr<otel::logs::LogRecord> WireLogger::CreateLogRecord() noexcept {
    try {
        auto record = nostd::unique_ptr<otel::logs::LogRecord>(new WireLogRecord());
        // As the SDK's logger: the observed time is when the record was made.
        record->SetObservedTimestamp(std::chrono::system_clock::now());
        return record;
    } catch (...) {
        return nullptr;
    }
}

void WireLogger::EmitLogRecord(nostd::unique_ptr<otel::logs::LogRecord>&& record) noexcept {
    // Only records this logger made come back here (the API pairs CreateLogRecord with
    // EmitLogRecord on the same logger).
    if (const auto* wire = static_cast<const WireLogRecord*>(record.get())) {
        if (wire->complete()) {
            m_pipeline->submit(wire->encoded());
        } else {
            m_pipeline->drop();
        }
    }
    record.reset();
}

bool WireLogger::flush(std::chrono::microseconds timeout) noexcept {
    return m_pipeline->flush(timeout);
}

void WireLogger::shutdown(std::chrono::microseconds timeout) noexcept {
    m_pipeline->stop(timeout);
}

} // namespace labctl::taskapi
