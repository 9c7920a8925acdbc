#include "json_log.hpp"

#include <opentelemetry/logs/log_record.h>
#include <opentelemetry/logs/severity.h>

#include <array>
#include <charconv>
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

} // namespace

namespace {

/// Appends `2026-11-27T05:50:32.123Z`. The part up to the seconds is formatted once per second
/// and thread (gmtime_r and snprintf cost about 3k instructions; this is called per request).
void append_iso8601_utc_now(std::string& out) {
    const auto now = std::chrono::system_clock::now();
    const auto since_epoch = now.time_since_epoch();
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    const auto ms = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - secs).count());
    thread_local std::int64_t t_second = -1;
    thread_local std::array<char, 32> t_prefix{}; // "2026-11-27T05:50:32."
    thread_local std::size_t t_prefix_size = 0;
    if (secs.count() != t_second) {
        const std::time_t t = static_cast<std::time_t>(secs.count());
        std::tm tm{};
        gmtime_r(&t, &tm);
        const int n = std::snprintf(t_prefix.data(), t_prefix.size(),
                                    "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
                                    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        t_prefix_size = n > 0 ? static_cast<std::size_t>(n) : 0;
        t_second = secs.count();
    }
    out.append(t_prefix.data(), t_prefix_size);
    const char digits[4] = {static_cast<char>('0' + ms / 100),
                            static_cast<char>('0' + ms / 10 % 10), static_cast<char>('0' + ms % 10),
                            'Z'};
    out.append(digits, sizeof digits);
}

} // namespace

std::string iso8601_utc_now() {
    std::string out;
    append_iso8601_utc_now(out);
    return out;
}

void JsonLog::log(LogLevel level, std::string_view message,
                  const opentelemetry::trace::SpanContext& context,
                  std::initializer_list<LogField> fields) {
    if (!enabled(level)) {
        return;
    }
    std::string line;
    line.reserve(256);
    line += "{\"timestamp\":\"";
    append_iso8601_utc_now(line);
    line += "\",\"level\":\"";
    line += level_name(level);
    line += "\",\"message\":";
    append_json_string(line, message);
    if (context.IsValid()) {
        // Lower-case hex needs no escaping: written in place.
        std::array<char, 32> t{};
        std::array<char, 16> s{};
        context.trace_id().ToLowerBase16(t);
        context.span_id().ToLowerBase16(s);
        line += ",\"trace_id\":\"";
        line.append(t.data(), t.size());
        line += "\",\"span_id\":\"";
        line.append(s.data(), s.size());
        line += '"';
    } else {
        line += ",\"trace_id\":\"\",\"span_id\":\"\"";
    }
    for (const auto& [key, value] : fields) {
        line.push_back(',');
        append_json_string(line, key);
        line.push_back(':');
        if (const auto* s = std::get_if<std::string_view>(&value)) {
            append_json_string(line, *s);
        } else if (const auto* i = std::get_if<std::int64_t>(&value)) {
            std::array<char, 24> buf{};
            const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), *i);
            line.append(buf.data(), r.ptr);
        } else if (const auto* d = std::get_if<double>(&value)) {
            append_json_number(line, *d); // null for NaN and infinities
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
    // The level is the record's severity (number and text); no attribute repeats it.
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
