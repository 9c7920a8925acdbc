#include <fmt/format.h>

#include <charconv>

#include <labctl/config/ipv4.hpp>

namespace labctl::config {

std::optional<std::uint32_t> parse_ipv4(std::string_view text) {
    std::uint32_t address = 0;
    std::size_t pos = 0;
    for (int part = 0; part < 4; ++part) {
        if (part > 0) {
            if (pos >= text.size() || text[pos] != '.')
                return std::nullopt;
            ++pos;
        }
        const std::size_t start = pos;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9')
            ++pos;
        const std::size_t len = pos - start;
        if (len == 0 || len > 3 || (len > 1 && text[start] == '0'))
            return std::nullopt; // leading zeros read as octal elsewhere: refuse them
        unsigned value = 0;
        std::from_chars(text.data() + start, text.data() + pos, value);
        if (value > 255)
            return std::nullopt;
        address = (address << 8) | value;
    }
    if (pos != text.size())
        return std::nullopt;
    return address;
}

std::string format_ipv4(std::uint32_t a) {
    return fmt::format("{}.{}.{}.{}", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
}

std::uint32_t Ipv4Network::netmask() const {
    return prefix <= 0 ? 0 : ~std::uint32_t{0} << (32 - prefix);
}
std::uint32_t Ipv4Network::broadcast() const {
    return address | ~netmask();
}
std::uint32_t Ipv4Network::gateway() const {
    return address + 1;
}
std::uint32_t Ipv4Network::first_host() const {
    return address + 1;
}
std::uint32_t Ipv4Network::last_host() const {
    return broadcast() - 1;
}
bool Ipv4Network::contains(std::uint32_t ip) const {
    return (ip & netmask()) == address;
}
std::string Ipv4Network::to_string() const {
    return fmt::format("{}/{}", format_ipv4(address), prefix);
}

std::optional<Ipv4Network> parse_cidr(std::string_view text) {
    const auto slash = text.find('/');
    if (slash == std::string_view::npos)
        return std::nullopt;
    const auto address = parse_ipv4(text.substr(0, slash));
    const auto digits = text.substr(slash + 1);
    if (!address || digits.empty() || digits.size() > 2 || (digits.size() > 1 && digits[0] == '0'))
        return std::nullopt;
    int prefix = -1;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), prefix);
    if (ec != std::errc() || end != digits.data() + digits.size() || prefix < 0 || prefix > 32)
        return std::nullopt;
    Ipv4Network net{*address, prefix};
    if ((*address & ~net.netmask()) != 0)
        return std::nullopt;
    return net;
}

} // namespace labctl::config
