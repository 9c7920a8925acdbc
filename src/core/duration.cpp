#include <fmt/format.h>

#include <cctype>
#include <ctime>
#include <limits>

#include <labctl/core/duration.hpp>

namespace labctl {

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
    if (text.empty())
        return std::nullopt;
    using Rep = std::chrono::milliseconds::rep;
    constexpr Rep k_max = std::numeric_limits<Rep>::max() / 4;
    Rep total = 0;
    std::size_t i = 0;
    bool any = false;
    while (i < text.size()) {
        if (!std::isdigit(static_cast<unsigned char>(text[i])))
            return std::nullopt;
        Rep n = 0;
        while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
            n = n * 10 + (text[i] - '0');
            if (n > k_max)
                return std::nullopt;
            ++i;
        }
        std::string_view unit;
        const std::size_t u0 = i;
        while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i])))
            ++i;
        unit = text.substr(u0, i - u0);
        Rep factor = 0;
        if (unit.empty()) {
            if (any || i != text.size())
                return std::nullopt; // a bare number is only valid alone ("30" = 30 s)
            factor = 1000;
        } else if (unit == "ms") {
            factor = 1;
        } else if (unit == "s") {
            factor = 1000;
        } else if (unit == "m") {
            factor = 60'000;
        } else if (unit == "h") {
            factor = 3'600'000;
        } else {
            return std::nullopt;
        }
        if (n > k_max / factor)
            return std::nullopt;
        total += n * factor;
        if (total > k_max)
            return std::nullopt;
        any = true;
    }
    return std::chrono::milliseconds(total);
}

std::string format_duration(std::chrono::milliseconds d) {
    const auto ms = d.count();
    if (ms < 1000)
        return fmt::format("{}ms", ms);
    if (ms < 60'000)
        return fmt::format("{:.1f}s", static_cast<double>(ms) / 1000.0);
    const auto secs = ms / 1000;
    if (secs < 3600)
        return fmt::format("{}m{:02d}s", secs / 60, secs % 60);
    return fmt::format("{}h{:02d}m", secs / 3600, (secs % 3600) / 60);
}

std::chrono::milliseconds since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 t);
}

std::string utc_now(const char* format) {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    return std::string(buf, std::strftime(buf, sizeof buf, format, &tm));
}

} // namespace labctl
