#pragma once
// Trace ids arrive in three spellings: 32 hex digits (W3C, Loki structured metadata), base64 of
// the 16 bytes (Tempo's span JSON) and hex with leading zeros stripped (Tempo search). All are
// normalised to 32 lowercase hex digits before they are compared.

#include <optional>
#include <string>
#include <string_view>

namespace labctl::verify {

/// 32 lowercase hex digits, or nullopt when `text` is none of the spellings above (or all zero).
std::optional<std::string> normalize_trace_id(std::string_view text);

/// Same for 8-byte span ids (16 hex digits).
std::optional<std::string> normalize_span_id(std::string_view text);

/// A random non-zero trace id (32 hex) and span id (16 hex) for a W3C traceparent.
std::string random_trace_id();
std::string random_span_id();

/// "00-<trace>-<span>-01"
std::string traceparent(const std::string& trace_id, const std::string& span_id);

} // namespace labctl::verify
