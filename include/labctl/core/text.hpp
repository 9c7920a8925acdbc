#pragma once
// Text helpers shared by modules.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace labctl {

/// The last `n` non-empty lines of a tool's output, each on its own line indented by two spaces
/// and preceded by a newline (for error messages); empty when there are none.
std::string tail_lines(const std::string& text, std::size_t n);

/// Hands every complete line of `buf` (without its '\n') to `cb` and leaves the unfinished rest
/// in `buf`, for output that arrives in chunks. With `at_end` a non-empty rest is the last line and
/// is handed over too. Nothing happens when `cb` is empty.
void take_lines(std::string& buf, const std::function<void(const std::string&)>& cb,
                bool at_end = false);

/// `s` without leading and trailing ASCII whitespace (space, \t, \n, \v, \f, \r); a view into `s`.
std::string_view trim(std::string_view s);

/// `s` (trimmed) as a decimal number: only digits, no sign, no overflow; nullopt otherwise.
std::optional<std::uint64_t> parse_u64(std::string_view s);

/// An IPv4 or IPv6 address, or a network with a prefix length ("10.0.0.0/8", "2001:db8::/32").
struct AddressOrNetwork {
    int family = 0;          ///< 4 or 6; 0: not an address
    int max_prefix = 0;      ///< 32 or 128
    bool bad_prefix = false; ///< an address, but the prefix length is not 0..max_prefix
};
AddressOrNetwork parse_address_or_network(std::string_view text);

/// `s` with ASCII letters A-Z lowered (locale-independent; other bytes unchanged).
std::string lower(std::string_view s);

/// `s` as one word for a POSIX shell (also zsh and bash): in single quotes, each ' written '\''.
std::string shell_quote(std::string_view s);

/// `text` escaped for XML element content and attribute values (quoted with ' or "): & < > " '
/// become entities, control characters XML 1.0 forbids (all below 0x20 but tab, newline and
/// carriage return) become a space.
std::string xml_escape(std::string_view text);

} // namespace labctl
