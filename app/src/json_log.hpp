#pragma once
// Structured logging: one JSON object per line on stdout (timestamp, level, message, trace_id,
// span_id, fields) and the same record exported as an OTLP log record with trace context.

#include <opentelemetry/trace/span_context.h>

#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <string_view>
#include <utility>
#include <variant>

#include "config.hpp"

namespace labctl::taskapi {

class Telemetry;

using LogValue = std::variant<std::string_view, std::int64_t, double, bool>;
using LogField = std::pair<std::string_view, LogValue>;

class JsonLog {
public:
    JsonLog(LogLevel min_level, Telemetry& telemetry)
        : m_min_level(min_level), m_telemetry(telemetry) {}

    bool enabled(LogLevel level) const { return level >= m_min_level; }
    void log(LogLevel level, std::string_view message,
             const opentelemetry::trace::SpanContext& context,
             std::initializer_list<LogField> fields = {});
    void log(LogLevel level, std::string_view message,
             std::initializer_list<LogField> fields = {}) {
        log(level, message, opentelemetry::trace::SpanContext::GetInvalid(), fields);
    }

private:
    LogLevel m_min_level;
    Telemetry& m_telemetry;
    std::mutex m_mutex;
};

/// `2026-11-27T05:50:32.123Z`
std::string iso8601_utc_now();

} // namespace labctl::taskapi
