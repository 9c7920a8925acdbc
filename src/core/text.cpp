#include <arpa/inet.h>

#include <charconv>
#include <sstream>
#include <vector>

#include <labctl/core/text.hpp>

namespace labctl {

std::string tail_lines(const std::string& text, std::size_t n) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);)
        if (!l.empty())
            lines.push_back(l);
    std::string out;
    for (std::size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i)
        out += "\n  " + lines[i];
    return out;
}

void take_lines(std::string& buf, const std::function<void(const std::string&)>& cb, bool at_end) {
    if (!cb)
        return;
    std::size_t start = 0;
    for (std::size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1)
        cb(buf.substr(start, nl - start));
    buf.erase(0, start);
    if (at_end && !buf.empty()) {
        cb(buf);
        buf.clear();
    }
}

std::optional<std::uint64_t> parse_u64(std::string_view s) {
    s = trim(s);
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size())
        return std::nullopt;
    return v;
}

std::string_view trim(std::string_view s) {
    constexpr std::string_view space = " \t\n\v\f\r";
    const auto b = s.find_first_not_of(space);
    if (b == std::string_view::npos)
        return {};
    const auto e = s.find_last_not_of(space);
    return s.substr(b, e - b + 1);
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    return out;
}

std::string shell_quote(std::string_view s) {
    std::string out = "'";
    for (const char c : s) {
        if (c == '\'')
            out += "'\\''";
        else
            out += c;
    }
    return out + "'";
}

std::string xml_escape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        switch (c) {
        case '&':
            out += "&amp;";
            break;
        case '<':
            out += "&lt;";
            break;
        case '>':
            out += "&gt;";
            break;
        case '"':
            out += "&quot;";
            break;
        case '\'':
            out += "&apos;";
            break;
        default:
            if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r')
                out += ' ';
            else
                out += c;
        }
    }
    return out;
}

AddressOrNetwork parse_address_or_network(std::string_view text) {
    AddressOrNetwork out;
    const auto slash = text.find('/');
    const std::string address(text.substr(0, slash));
    unsigned char buf[16];
    if (::inet_pton(AF_INET, address.c_str(), buf) == 1)
        out = {4, 32, false};
    else if (::inet_pton(AF_INET6, address.c_str(), buf) == 1)
        out = {6, 128, false};
    else
        return out;
    if (slash != std::string_view::npos) {
        const auto prefix = parse_u64(text.substr(slash + 1));
        out.bad_prefix = !prefix || *prefix > static_cast<std::uint64_t>(out.max_prefix);
    }
    return out;
}

} // namespace labctl
