#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <random>

#include <labctl/core/encoding.hpp>
#include <labctl/core/text.hpp>
#include <labctl/verify/trace_id.hpp>

namespace labctl::verify {

namespace {
bool is_hex(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isxdigit(static_cast<unsigned char>(c)) != 0;
    });
}

std::optional<std::string> normalize(std::string_view text, std::size_t bytes) {
    const std::size_t digits = bytes * 2;
    text = trim(text);
    if (text.empty())
        return std::nullopt;
    std::string hex;
    // Hex first: Tempo's base64 ids are padded ("…==" for 16 bytes, "…=" for 8), so a string of
    // hex digits only is hex, with leading zeros stripped when shorter (Tempo search). Unpadded
    // base64 that happens to be all hex digits is astronomically unlikely (22 of 64 symbols).
    if (text.size() <= digits && is_hex(text)) {
        hex = std::string(digits - text.size(), '0') + lower(text);
    } else if (const auto raw = base64_decode(text); raw && raw->size() == bytes) {
        hex = to_hex(*raw);
    } else {
        return std::nullopt;
    }
    if (hex.find_first_not_of('0') == std::string::npos)
        return std::nullopt;
    return hex;
}

std::string random_hex(std::size_t bytes) {
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    std::string out;
    while (out.size() < bytes * 2)
        out += fmt::format("{:016x}", rng());
    out.resize(bytes * 2);
    if (out.find_first_not_of('0') == std::string::npos)
        out.back() = '1';
    return out;
}
} // namespace

std::optional<std::string> normalize_trace_id(std::string_view text) {
    return normalize(text, 16);
}
std::optional<std::string> normalize_span_id(std::string_view text) {
    return normalize(text, 8);
}

std::string random_trace_id() {
    return random_hex(16);
}
std::string random_span_id() {
    return random_hex(8);
}

std::string traceparent(const std::string& trace_id, const std::string& span_id) {
    return fmt::format("00-{}-{}-01", trace_id, span_id);
}

} // namespace labctl::verify
