#pragma once
// Small, allocation-light helpers for writing JSON text and checking UTF-8.

#include <cstddef>
#include <string>
#include <string_view>

namespace labctl::taskapi {

/// True when `text` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool valid_utf8(std::string_view text);

/// Number of code points in well-formed UTF-8 `text`.
std::size_t utf8_length(std::string_view text);

/// Appends `text` as a quoted JSON string to `out` (control characters escaped; bytes of
/// ill-formed UTF-8 escaped as \u00XX so the result is always valid JSON).
void append_json_string(std::string& out, std::string_view text);

/// Appends `value` as a JSON number in fixed notation with `decimals` digits after the point, or
/// `null` when it is NaN or infinite (which JSON cannot represent: `nan`/`inf` would make the
/// whole line invalid JSON).
void append_json_number(std::string& out, double value, int decimals = 6);

/// `{"error":"<message>"}`
std::string error_body(std::string_view message);

} // namespace labctl::taskapi
