#include "json_text.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace labctl::taskapi {

bool valid_utf8(std::string_view text) {
    std::size_t i = 0;
    const std::size_t n = text.size();
    while (i < n) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t extra = 0;
        std::uint32_t cp = 0;
        if (c >= 0xC2 && c <= 0xDF) {
            extra = 1;
            cp = c & 0x1Fu;
        } else if (c >= 0xE0 && c <= 0xEF) {
            extra = 2;
            cp = c & 0x0Fu;
        } else if (c >= 0xF0 && c <= 0xF4) {
            extra = 3;
            cp = c & 0x07u;
        } else {
            return false;
        }
        if (i + extra >= n) {
            return false;
        }
        for (std::size_t k = 1; k <= extra; ++k) {
            const auto cc = static_cast<unsigned char>(text[i + k]);
            if ((cc & 0xC0u) != 0x80u) {
                return false;
            }
            cp = (cp << 6) | (cc & 0x3Fu);
        }
        if ((extra == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (extra == 3 && (cp < 0x10000 || cp > 0x10FFFF))) {
            return false;
        }
        i += extra + 1;
    }
    return true;
}

std::size_t utf8_length(std::string_view text) {
    std::size_t count = 0;
    for (const char ch : text) {
        if ((static_cast<unsigned char>(ch) & 0xC0u) != 0x80u) {
            ++count;
        }
    }
    return count;
}

void append_json_string(std::string& out, std::string_view text) {
    static constexpr std::array<char, 16> k_hex = {'0', '1', '2', '3', '4', '5', '6', '7',
                                                   '8', '9', 'a', 'b', 'c', 'd', 'e', 'f'};
    // Nearly every string (routes, paths, messages, ids) is printable ASCII with nothing to
    // escape: one scan, one append.
    bool plain = true;
    for (const char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c >= 0x7F || c == '"' || c == '\\') {
            plain = false;
            break;
        }
    }
    if (plain) {
        const std::size_t at = out.size();
        out.resize(at + text.size() + 2);
        char* p = out.data() + at;
        *p++ = '"';
        std::memcpy(p, text.data(), text.size());
        p[text.size()] = '"';
        return;
    }
    // Bytes of ill-formed UTF-8 (possible in raw paths or headers) are escaped one by one so
    // the output is always valid JSON.
    const bool utf8_ok = valid_utf8(text);
    const auto needs_escape = [utf8_ok](unsigned char c) {
        return c < 0x20 || c == '"' || c == '\\' || c == 0x7F || (c >= 0x80 && !utf8_ok);
    };
    out.reserve(out.size() + text.size() + 2);
    out.push_back('"');
    std::size_t run_start = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (!needs_escape(c)) {
            continue;
        }
        out.append(text.data() + run_start, i - run_start);
        run_start = i + 1;
        switch (c) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\r':
            out += "\\r";
            break;
        case '\t':
            out += "\\t";
            break;
        default: {
            const std::array<char, 6> esc = {'\\', 'u', '0', '0', k_hex[c >> 4], k_hex[c & 0x0Fu]};
            out.append(esc.data(), esc.size());
        }
        }
    }
    out.append(text.data() + run_start, text.size() - run_start);
    out.push_back('"');
}

void append_json_number(std::string& out, double value, int decimals) {
    if (!std::isfinite(value)) {
        out += "null";
        return;
    }
    // DBL_MAX in fixed notation takes 309 digits before the point.
    std::array<char, 352> buf{};
    const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), value,
                                 std::chars_format::fixed, std::clamp(decimals, 0, 17));
    if (r.ec != std::errc{}) {
        out += "null";
        return;
    }
    out.append(buf.data(), r.ptr);
}

std::string error_body(std::string_view message) {
    std::string out = "{\"error\":";
    append_json_string(out, message);
    out.push_back('}');
    return out;
}

} // namespace labctl::taskapi
