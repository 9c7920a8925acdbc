#pragma once
// Validation of everything a client sends the task API: JSON request bodies, path ids and query
// values. Pure functions without I/O, so they are unit-tested and fuzzed (tests/fuzz) directly.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace labctl::taskapi {

inline constexpr std::size_t k_max_body_bytes = 64 * 1024;     ///< larger bodies: 413
inline constexpr std::size_t k_max_title_chars = 200;          ///< code points
inline constexpr std::size_t k_max_description_chars = 10'000; ///< code points
inline constexpr std::size_t k_max_json_depth = 8;             ///< nesting of arrays/objects
inline constexpr double k_default_slow_delay_s = 2.0;
inline constexpr double k_max_slow_delay_s = 10.0; ///< simulate-slow delays are capped here
inline constexpr std::int64_t k_max_smoke_ops = 1000;
inline constexpr std::int64_t k_default_smoke_ops = 10;

enum class InputMode { create, update };

/// Fields a client may set on a task. For updates every field is optional; `description_set`
/// distinguishes "absent" from an explicit null.
struct TaskInput {
    std::optional<std::string> title;
    bool description_set = false;
    std::optional<std::string> description;
    std::optional<bool> completed;
};

/// Either `input` or a human-readable `error` naming the offending field.
struct TaskInputResult {
    std::optional<TaskInput> input;
    std::string error;
};

/// Parses and validates a request body: a JSON object (UTF-8, at most k_max_body_bytes, nesting
/// at most k_max_json_depth) with `title` (string, non-blank, ≤ k_max_title_chars; required on
/// create), `description` (string ≤ k_max_description_chars or null) and `completed` (bool).
/// Unknown members are ignored. Throws only std::bad_alloc (running out of memory is not the
/// client's fault, so it must not become a 400).
TaskInputResult parse_task_input(std::string_view body, InputMode mode);

/// A task id from a path segment: decimal digits only, 1 ≤ id ≤ INT64_MAX; nullopt otherwise.
std::optional<std::int64_t> parse_task_id(std::string_view segment);

/// simulate-slow's `delay` (seconds): absent → default; a finite number ≥ 0 (decimal notation)
/// clamped to k_max_slow_delay_s; nullopt for anything else.
std::optional<double> parse_delay(const std::optional<std::string>& value);

/// A positive integer count 1..max from a query value; absent → `fallback`; nullopt if invalid.
std::optional<std::int64_t> parse_count(const std::optional<std::string>& value,
                                        std::int64_t fallback, std::int64_t max);

/// W3C Trace Context `traceparent` validity (version-format, lower-case hex, no all-zero ids,
/// version ff forbidden, version 00 exactly 55 characters, future versions ≥ 55 with a '-' after
/// the flags). An invalid header is ignored and the request starts a new trace.
bool valid_traceparent(std::string_view header);

/// True when a Content-Type header names JSON (`application/json`, parameters allowed).
bool is_json_media_type(std::string_view content_type);

} // namespace labctl::taskapi
