#pragma once
// Human durations for config and output: "90s", "5m", "1h30m", "250ms", plain seconds "30".

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace labctl {

/// Parses a duration; nullopt on malformed input or overflow.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

/// Formats for humans: "850ms", "12.3s", "4m05s", "1h02m".
std::string format_duration(std::chrono::milliseconds d);

/// Time passed since `t`.
std::chrono::milliseconds since(std::chrono::steady_clock::time_point t);

/// The current UTC time through strftime(3) `format`, e.g. "%Y-%m-%dT%H:%M:%SZ".
std::string utc_now(const char* format);

} // namespace labctl
