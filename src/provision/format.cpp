#include "format.hpp"

#include <fmt/format.h>

#include <array>

namespace labctl::provision {

std::string approx_size(std::uint64_t bytes) {
    static constexpr std::array<const char*, 5> k_units{"B", "KiB", "MiB", "GiB", "TiB"};
    std::size_t unit = 0;
    std::uint64_t whole = bytes;
    while (unit + 1 < k_units.size() && whole >= 1024) {
        whole /= 1024;
        ++unit;
    }
    const std::uint64_t scale = 1ULL << (10 * unit);
    if (bytes % scale == 0)
        return fmt::format("{} {}", bytes / scale, k_units[unit]);
    return fmt::format("{:.1f} {}", static_cast<double>(bytes) / static_cast<double>(scale),
                       k_units[unit]);
}

} // namespace labctl::provision
