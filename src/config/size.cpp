// parse_size / format_size: memory and disk sizes in lab.yaml.
#include <fmt/format.h>

#include <array>
#include <cctype>
#include <limits>

#include <labctl/config/loader.hpp>

namespace labctl::config {

namespace {

struct Unit {
    std::string_view name; ///< lower case
    std::uint64_t factor;
};

constexpr std::uint64_t k_kib = 1024;
constexpr std::array<Unit, 13> k_units{{
    {"b", 1},
    {"k", k_kib},
    {"kib", k_kib},
    {"kb", 1000},
    {"m", k_kib* k_kib},
    {"mib", k_kib* k_kib},
    {"mb", 1000 * 1000},
    {"g", k_kib* k_kib* k_kib},
    {"gib", k_kib* k_kib* k_kib},
    {"gb", 1000 * 1000 * 1000},
    {"t", k_kib* k_kib* k_kib* k_kib},
    {"tib", k_kib* k_kib* k_kib* k_kib},
    {"tb", 1000ULL * 1000 * 1000 * 1000},
}};

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

} // namespace

std::optional<std::uint64_t> parse_size(const std::string& text) {
    constexpr std::uint64_t k_max = std::numeric_limits<std::uint64_t>::max();
    std::size_t i = 0;
    std::uint64_t whole = 0;
    const std::size_t whole_start = i;
    while (i < text.size() && is_digit(text[i])) {
        const auto digit = static_cast<std::uint64_t>(text[i] - '0');
        if (whole > (k_max - digit) / 10)
            return std::nullopt;
        whole = whole * 10 + digit;
        ++i;
    }
    if (i == whole_start)
        return std::nullopt; // no leading digit: empty, "-4GiB", ".5G", "GiB"
    std::uint64_t fraction = 0;
    std::uint64_t fraction_scale = 1;
    if (i < text.size() && text[i] == '.') {
        ++i;
        const std::size_t start = i;
        while (i < text.size() && is_digit(text[i])) {
            if (i - start >= 6)
                return std::nullopt; // more precision than any size needs
            fraction = fraction * 10 + static_cast<std::uint64_t>(text[i] - '0');
            fraction_scale *= 10;
            ++i;
        }
        if (i == start)
            return std::nullopt; // "4.GiB"
    }
    if (i < text.size() && text[i] == ' ')
        ++i; // "4 GiB" reads like format_size's output
    std::string unit;
    for (; i < text.size(); ++i) {
        if (!std::isalpha(static_cast<unsigned char>(text[i])))
            return std::nullopt;
        unit += static_cast<char>(std::tolower(static_cast<unsigned char>(text[i])));
    }
    if (unit.empty())
        return std::nullopt; // a bare number: bytes? MiB? refuse to guess
    for (const auto& u : k_units) {
        if (u.name != unit)
            continue;
        if (whole > k_max / u.factor)
            return std::nullopt;
        const std::uint64_t bytes = whole * u.factor;
        // fraction < 10^6 and factor <= 2^40 keep this product below 2^60.
        const std::uint64_t extra = fraction * u.factor / fraction_scale;
        if (bytes > k_max - extra)
            return std::nullopt;
        return bytes + extra;
    }
    return std::nullopt;
}

std::string format_size(std::uint64_t bytes) {
    static constexpr std::array<std::pair<std::uint64_t, std::string_view>, 4> k_binary{{
        {k_kib * k_kib * k_kib * k_kib, "TiB"},
        {k_kib * k_kib * k_kib, "GiB"},
        {k_kib * k_kib, "MiB"},
        {k_kib, "KiB"},
    }};
    for (const auto& [factor, name] : k_binary)
        if (bytes >= factor && bytes % factor == 0)
            return fmt::format("{} {}", bytes / factor, name);
    return fmt::format("{} B", bytes);
}

} // namespace labctl::config
