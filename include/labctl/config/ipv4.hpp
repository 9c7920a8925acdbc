#pragma once
// IPv4 addresses and networks as lab.yaml uses them (network.cidr, vms[].ip).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace labctl::config {

/// Strict dotted quad ("10.66.77.10"): four decimal numbers 0-255, no leading zeros.
std::optional<std::uint32_t> parse_ipv4(std::string_view text);
std::string format_ipv4(std::uint32_t address);

/// An IPv4 network. The gateway (the host side of a libvirt network) is the first host address.
struct Ipv4Network {
    std::uint32_t address = 0; ///< network address (host bits clear)
    int prefix = 24;           ///< 0..32

    std::uint32_t netmask() const;
    std::uint32_t broadcast() const;
    std::uint32_t gateway() const;    ///< address + 1
    std::uint32_t first_host() const; ///< address + 1
    std::uint32_t last_host() const;  ///< broadcast - 1
    bool contains(std::uint32_t ip) const;
    std::string to_string() const; ///< "10.66.77.0/24"
};

/// Parses "a.b.c.d/p" with host bits clear; nullopt otherwise (the loader explains why).
std::optional<Ipv4Network> parse_cidr(std::string_view text);

} // namespace labctl::config
