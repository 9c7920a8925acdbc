#include "task_input.hpp"

#include <Poco/Dynamic/Var.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <new>
#include <typeinfo>

#include "json_text.hpp"

namespace labctl::taskapi {
namespace {

/// Nesting depth of arrays/objects outside strings; stops counting once over `limit`.
std::size_t json_depth(std::string_view body, std::size_t limit) {
    std::size_t depth = 0;
    std::size_t max_depth = 0;
    bool in_string = false;
    bool escaped = false;
    for (const char ch : body) {
        if (in_string) {
            if (escaped) {
                escaped = false;
            } else if (ch == '\\') {
                escaped = true;
            } else if (ch == '"') {
                in_string = false;
            }
            continue;
        }
        if (ch == '"') {
            in_string = true;
        } else if (ch == '{' || ch == '[') {
            max_depth = std::max(max_depth, ++depth);
            if (max_depth > limit) {
                return max_depth;
            }
        } else if ((ch == '}' || ch == ']') && depth > 0) {
            --depth;
        }
    }
    return max_depth;
}

bool is_blank(std::string_view text) {
    return std::all_of(text.begin(), text.end(),
                       [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; });
}

std::string type_name(const Poco::Dynamic::Var& v) {
    if (v.isEmpty()) {
        return "null";
    }
    if (v.isString()) {
        return "string";
    }
    if (v.type() == typeid(bool)) {
        return "boolean";
    }
    if (v.isNumeric()) {
        return "number";
    }
    if (v.type() == typeid(Poco::JSON::Array::Ptr) || v.isArray()) {
        return "array";
    }
    return "object";
}

TaskInputResult fail(std::string message) {
    return TaskInputResult{std::nullopt, std::move(message)};
}

} // namespace

TaskInputResult parse_task_input(std::string_view body, InputMode mode) {
    if (body.size() > k_max_body_bytes) {
        return fail("request body too large");
    }
    if (body.empty() || is_blank(body)) {
        return fail("request body must be a JSON object");
    }
    if (!valid_utf8(body)) {
        return fail("request body is not valid UTF-8");
    }
    if (json_depth(body, k_max_json_depth) > k_max_json_depth) {
        return fail("request body is nested too deeply");
    }
    Poco::JSON::Object::Ptr object;
    try {
        Poco::JSON::Parser parser;
        parser.setAllowComments(false);
        parser.setAllowNullByte(false);
        parser.setDepth(k_max_json_depth + 1);
        const Poco::Dynamic::Var root = parser.parse(std::string(body));
        if (root.type() != typeid(Poco::JSON::Object::Ptr)) {
            return fail("request body must be a JSON object");
        }
        object = root.extract<Poco::JSON::Object::Ptr>();
    } catch (const std::bad_alloc&) {
        throw; // the server's trouble, not the client's: a 503, never a 400
    } catch (...) {
        return fail("request body is not valid JSON");
    }
    if (object.isNull()) {
        return fail("request body must be a JSON object");
    }

    TaskInput input;
    try {
        if (object->has("title")) {
            const Poco::Dynamic::Var v = object->get("title");
            if (!v.isString()) {
                return fail("field 'title' must be a string, not " + type_name(v));
            }
            auto title = v.extract<std::string>();
            if (!valid_utf8(title)) {
                return fail("field 'title' is not valid UTF-8");
            }
            if (is_blank(title)) {
                return fail("field 'title' must not be empty");
            }
            if (utf8_length(title) > k_max_title_chars) {
                return fail("field 'title' must be at most " + std::to_string(k_max_title_chars) +
                            " characters");
            }
            input.title = std::move(title);
        } else if (mode == InputMode::create) {
            return fail("field 'title' is required");
        }
        if (object->has("description")) {
            const Poco::Dynamic::Var v = object->get("description");
            input.description_set = true;
            if (!v.isEmpty()) {
                if (!v.isString()) {
                    return fail("field 'description' must be a string or null, not " +
                                type_name(v));
                }
                auto description = v.extract<std::string>();
                if (!valid_utf8(description)) {
                    return fail("field 'description' is not valid UTF-8");
                }
                if (utf8_length(description) > k_max_description_chars) {
                    return fail("field 'description' must be at most " +
                                std::to_string(k_max_description_chars) + " characters");
                }
                input.description = std::move(description);
            }
        }
        if (object->has("completed")) {
            const Poco::Dynamic::Var v = object->get("completed");
            if (v.type() != typeid(bool)) {
                return fail("field 'completed' must be a boolean, not " + type_name(v));
            }
            input.completed = v.extract<bool>();
        }
    } catch (const std::bad_alloc&) {
        throw;
    } catch (...) {
        return fail("request body is not valid JSON");
    }
    if (mode == InputMode::update && !input.title && !input.description_set && !input.completed) {
        return fail("request body must contain at least one of 'title', 'description', "
                    "'completed'");
    }
    return TaskInputResult{std::move(input), {}};
}

std::optional<std::int64_t> parse_task_id(std::string_view segment) {
    if (segment.empty() || segment.size() > 19 ||
        !std::all_of(segment.begin(), segment.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return std::nullopt;
    }
    std::int64_t id = 0;
    const auto [ptr, ec] = std::from_chars(segment.data(), segment.data() + segment.size(), id);
    if (ec != std::errc{} || ptr != segment.data() + segment.size() || id < 1) {
        return std::nullopt;
    }
    return id;
}

std::optional<double> parse_delay(const std::optional<std::string>& value) {
    if (!value) {
        return k_default_slow_delay_s;
    }
    const std::string& s = *value;
    // Plain decimal notation only: digits with at most one '.', nothing else (no sign, exponent,
    // hex, inf or nan).
    if (s.empty() || s.size() > 32) {
        return std::nullopt;
    }
    bool seen_dot = false;
    bool seen_digit = false;
    for (const char c : s) {
        if (c == '.' && !seen_dot) {
            seen_dot = true;
        } else if (c >= '0' && c <= '9') {
            seen_digit = true;
        } else {
            return std::nullopt;
        }
    }
    if (!seen_digit) {
        return std::nullopt;
    }
    double delay = 0;
    const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), delay);
    if (ec != std::errc{} || ptr != s.data() + s.size() || !std::isfinite(delay) || delay < 0) {
        return std::nullopt;
    }
    return std::min(delay, k_max_slow_delay_s);
}

std::optional<std::int64_t> parse_count(const std::optional<std::string>& value,
                                        std::int64_t fallback, std::int64_t max) {
    if (!value) {
        return fallback;
    }
    const auto id = parse_task_id(*value);
    if (!id || *id > max) {
        return std::nullopt;
    }
    return id;
}

bool valid_traceparent(std::string_view h) {
    const auto lower_hex = [](std::string_view s) {
        return std::all_of(s.begin(), s.end(),
                           [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
    };
    const auto all_zero = [](std::string_view s) {
        return std::all_of(s.begin(), s.end(), [](char c) { return c == '0'; });
    };
    if (h.size() < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-') {
        return false;
    }
    const std::string_view version = h.substr(0, 2);
    const std::string_view trace_id = h.substr(3, 32);
    const std::string_view parent_id = h.substr(36, 16);
    const std::string_view flags = h.substr(53, 2);
    if (!lower_hex(version) || version == "ff" || !lower_hex(trace_id) || !lower_hex(parent_id) ||
        !lower_hex(flags) || all_zero(trace_id) || all_zero(parent_id)) {
        return false;
    }
    if (version == "00") {
        return h.size() == 55;
    }
    return h.size() == 55 || h[55] == '-';
}

bool is_json_media_type(std::string_view content_type) {
    const auto semicolon = content_type.find(';');
    std::string_view media = content_type.substr(0, semicolon);
    while (!media.empty() && std::isspace(static_cast<unsigned char>(media.front())) != 0) {
        media.remove_prefix(1);
    }
    while (!media.empty() && std::isspace(static_cast<unsigned char>(media.back())) != 0) {
        media.remove_suffix(1);
    }
    constexpr std::string_view k_json = "application/json";
    if (media.size() != k_json.size()) {
        return false;
    }
    for (std::size_t i = 0; i < media.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(media[i])) != k_json[i]) {
            return false;
        }
    }
    return true;
}

} // namespace labctl::taskapi
