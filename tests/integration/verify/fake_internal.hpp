#pragma once
// Private helpers of the verify fixtures (fake_*.cpp).

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include <labctl/core/encoding.hpp>

namespace labctl::test::verify::detail {

inline std::string hex_to_bytes(const std::string& hex) {
    std::string out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
        out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    return out;
}

/// Tempo's JSON (gogo jsonpb) writes span and trace ids as base64 of their bytes.
inline std::string b64(const std::string& hex) {
    return labctl::base64_encode(hex_to_bytes(hex));
}

/// Tempo's search lists trace ids without leading zeros.
inline std::string strip_zeros(const std::string& hex) {
    const auto p = hex.find_first_not_of('0');
    return p == std::string::npos ? "0" : hex.substr(p);
}

inline long long now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

inline nlohmann::json attr(const std::string& key, const std::string& value) {
    return {{"key", key}, {"value", {{"stringValue", value}}}};
}

} // namespace labctl::test::verify::detail
