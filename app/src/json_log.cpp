#include "json_log.hpp"

#include <opentelemetry/logs/log_record.h>
#include <opentelemetry/logs/severity.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "json_text.hpp"
#include "telemetry.hpp"

namespace labctl::taskapi {
namespace {

const char* level_name(LogLevel level) {
    switch (level) {
    case LogLevel::debug:
        return "debug";
    case LogLevel::info:
        return "info";
    case LogLevel::warn:
        return "warn";
    case LogLevel::error:
        return "error";
    }
    return "info";
}

opentelemetry::logs::Severity severity(LogLevel level) {
    switch (level) {
    case LogLevel::debug:
        return opentelemetry::logs::Severity::kDebug;
    case LogLevel::info:
        return opentelemetry::logs::Severity::kInfo;
    case LogLevel::warn:
        return opentelemetry::logs::Severity::kWarn;
    case LogLevel::error:
        return opentelemetry::logs::Severity::kError;
    }
    return opentelemetry::logs::Severity::kInfo;
}

template <std::size_t N>
std::string hex(const std::array<char, N>& chars) {
    return std::string(chars.data(), N);
}

} // namespace

std::string iso8601_utc_now() {
    const auto now = std::chrono::system_clock::now();
    const auto secs = std::chrono::system_clock::to_time_t(now);
    const auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
        1000;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    std::array<char, 40> buf{};
    const auto n = std::snprintf(buf.data(), buf.size(), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                                 tm.tm_min, tm.tm_sec, static_cast<int>(ms));
    return std::string(buf.data(), static_cast<std::size_t>(n));
}

void JsonLog::log(LogLevel level, std::string_view message,
                  const opentelemetry::trace::SpanContext& context,
                  std::initializer_list<LogField> fields) {
    if (!enabled(level)) {
        return;
    }
    std::string trace_id;
    std::string span_id;
    if (context.IsValid()) {
        std::array<char, 32> t{};
        std::array<char, 16> s{};
        context.trace_id().ToLowerBase16(t);
        context.span_id().ToLowerBase16(s);
        trace_id = hex(t);
        span_id = hex(s);
    }

    std::string line;
    line.reserve(256);
    line += "{\"timestamp\":\"";
    line += iso8601_utc_now();
    line += "\",\"level\":\"";
    line += level_name(level);
    line += "\",\"message\":";
    append_json_string(line, message);
    line += ",\"trace_id\":";
    append_json_string(line, trace_id);
    line += ",\"span_id\":";
    append_json_string(line, span_id);
    for (const auto& [key, value] : fields) {
        line.push_back(',');
        append_json_string(line, key);
        line.push_back(':');
        if (const auto* s = std::get_if<std::string_view>(&value)) {
            append_json_string(line, *s);
        } else if (const auto* i = std::get_if<std::int64_t>(&value)) {
            line += std::to_string(*i);
        } else if (const auto* d = std::get_if<double>(&value)) {
            std::array<char, 32> buf{};
            const int n = std::snprintf(buf.data(), buf.size(), "%.6f", *d);
            line.append(buf.data(), static_cast<std::size_t>(n));
        } else {
            line += std::get<bool>(value) ? "true" : "false";
        }
    }
    line += "}\n";
    {
        const std::lock_guard<std::mutex> lock(m_mutex);
        std::fwrite(line.data(), 1, line.size(), stdout);
        std::fflush(stdout);
    }

    if (!m_telemetry.enabled()) {
        return;
    }
    auto& logger = m_telemetry.logger();
    auto record = logger.CreateLogRecord();
    if (!record) {
        return;
    }
    record->SetSeverity(severity(level));
    record->SetBody(opentelemetry::nostd::string_view(message.data(), message.size()));
    record->SetTimestamp(std::chrono::system_clock::now());
    if (context.IsValid()) {
        record->SetTraceId(context.trace_id());
        record->SetSpanId(context.span_id());
        record->SetTraceFlags(context.trace_flags());
    }
    record->SetAttribute("level", level_name(level));
    for (const auto& [key, value] : fields) {
        const opentelemetry::nostd::string_view k(key.data(), key.size());
        if (const auto* s = std::get_if<std::string_view>(&value)) {
            record->SetAttribute(k, opentelemetry::nostd::string_view(s->data(), s->size()));
        } else if (const auto* i = std::get_if<std::int64_t>(&value)) {
            record->SetAttribute(k, *i);
        } else if (const auto* d = std::get_if<double>(&value)) {
            record->SetAttribute(k, *d);
        } else {
            record->SetAttribute(k, std::get<bool>(value));
        }
    }
    logger.EmitLogRecord(std::move(record));
}

} // namespace labctl::taskapi
