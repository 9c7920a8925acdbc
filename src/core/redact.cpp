#include <regex>

#include <labctl/core/redact.hpp>

namespace labctl {

std::string redact(std::string_view text) {
    // Cheap pre-check: most log lines contain none of the markers, and std::regex is slow.
    static constexpr std::string_view k_markers[] = {"PRIVATE KEY", "assword", "ASSWORD", "oken",
                                                     "OKEN",        "ecret",   "ECRET",   "earer",
                                                     "pi_key",      "PI_KEY"};
    bool suspicious = false;
    for (auto m : k_markers)
        suspicious = suspicious || text.find(m) != std::string_view::npos;
    if (!suspicious)
        return std::string(text);

    static const std::regex k_key_block(
        R"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$))");
    static const std::regex k_assignment(
        R"(((?:password|passwd|token|secret|api_key|apikey)["']?\s*[:=]\s*["']?)[^\s"',;&]+)",
        std::regex::icase);
    static const std::regex k_bearer(R"((Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+)", std::regex::icase);

    std::string out = std::regex_replace(std::string(text), k_key_block, "<redacted private key>");
    out = std::regex_replace(out, k_assignment, "$1<redacted>");
    out = std::regex_replace(out, k_bearer, "$1 <redacted>");
    return out;
}

} // namespace labctl
