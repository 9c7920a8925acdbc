// The request head reader (request_head.hpp): RFC 9112's request line and field lines, with the
// size limits of Poco's own parser and the statuses RFC 9110 gives each refusal.

#include "request_head.hpp"

#include <algorithm>
#include <charconv>
#include <string_view>

namespace labctl::taskapi {

namespace {

/// Leading empty lines a server should ignore before the request line (RFC 9112 §2.2), bounded.
constexpr std::size_t k_max_leading_newlines = 8;
/// Whitespace allowed around the request line's words and around a field value, beyond the limits
/// of the words and the value themselves.
constexpr std::size_t k_whitespace_slack = 64;
constexpr std::size_t k_max_version_bytes = 8; // "HTTP/1.1"
constexpr std::size_t k_max_request_line =
    k_max_method_bytes + k_max_target_bytes + k_max_version_bytes + k_whitespace_slack;
constexpr std::size_t k_max_field_line =
    k_max_field_name_bytes + 1 + k_max_field_value_bytes + 2 * k_whitespace_slack;
/// Content-Length digits: 18 fit in a signed 64-bit length (Poco's body streams take one).
constexpr std::size_t k_max_length_digits = 18;

bool is_space(char c) {
    return c == ' ' || c == '\t';
}

/// RFC 9110 §5.6.2 tchar: the characters of a method or a field name.
bool is_tchar(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

/// The request line's words, split on runs of spaces and tabs (RFC 9112 §3 allows parsing on
/// whitespace-delimited word boundaries).
std::vector<std::string_view> words(std::string_view line) {
    std::vector<std::string_view> out;
    std::size_t pos = 0;
    while (pos < line.size()) {
        while (pos < line.size() && is_space(line[pos]))
            ++pos;
        const std::size_t start = pos;
        while (pos < line.size() && !is_space(line[pos]))
            ++pos;
        if (pos > start)
            out.push_back(line.substr(start, pos - start));
    }
    return out;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front()))
        s.remove_prefix(1);
    while (!s.empty() && is_space(s.back()))
        s.remove_suffix(1);
    return s;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               const auto lower = [](char c) {
                   return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
               };
               return lower(x) == lower(y);
           });
}

} // namespace

HeadReader::Step HeadReader::refuse(int status, std::string reason) {
    m_refusal = HeadRefusal{status, std::move(reason)};
    return Step::refused;
}

HeadReader::Step HeadReader::feed(char c) {
    m_started = true;
    if (c == '\n') {
        m_cr = false;
        return m_state == State::request_line ? end_request_line() : end_field_line();
    }
    if (m_cr)
        return refuse(400, "a CR not followed by LF in the request head");
    if (c == '\r') {
        m_cr = true;
        return Step::more;
    }
    if (c == '\0')
        return refuse(400, "a NUL byte in the request head");
    m_line.push_back(c);
    if (m_state == State::request_line) {
        if (m_line.size() > k_max_request_line) {
            // Cut short: say which word is too long.
            const auto w = words(m_line);
            if (!w.empty() && w[0].size() > k_max_method_bytes)
                return refuse(400, "request method longer than " +
                                       std::to_string(k_max_method_bytes) + " bytes");
            if (w.size() >= 2 && w[1].size() > k_max_target_bytes)
                return refuse(414, "request URI longer than " + std::to_string(k_max_target_bytes) +
                                       " bytes");
            return refuse(400, "request line too long");
        }
        return Step::more;
    }
    if (m_colon == std::string::npos) {
        if (c == ':')
            m_colon = m_line.size() - 1;
        else if (m_line.size() > k_max_field_name_bytes)
            return refuse(431, "a header field name longer than " +
                                   std::to_string(k_max_field_name_bytes) + " bytes");
    } else if (m_line.size() > k_max_field_line) {
        return refuse(431, "a header field value longer than " +
                               std::to_string(k_max_field_value_bytes) + " bytes");
    }
    return Step::more;
}

HeadReader::Step HeadReader::end_request_line() {
    if (m_line.empty()) {
        if (++m_leading_newlines > k_max_leading_newlines)
            return refuse(400, "empty lines instead of a request line");
        return Step::more;
    }
    const auto w = words(m_line);
    if (w.size() != 3)
        return refuse(400, "malformed request line (not METHOD TARGET VERSION)");
    if (w[0].size() > k_max_method_bytes)
        return refuse(400, "request method longer than " + std::to_string(k_max_method_bytes) +
                               " bytes");
    if (!is_token(w[0]))
        return refuse(400, "malformed request method");
    if (w[1].size() > k_max_target_bytes)
        return refuse(414,
                      "request URI longer than " + std::to_string(k_max_target_bytes) + " bytes");
    if (std::any_of(w[1].begin(), w[1].end(),
                    [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
        return refuse(400, "control characters in the request URI");
    const std::string_view version = w[2];
    const bool http_version = version.size() == k_max_version_bytes &&
                              version.substr(0, 5) == "HTTP/" && version[5] >= '0' &&
                              version[5] <= '9' && version[6] == '.' && version[7] >= '0' &&
                              version[7] <= '9';
    if (!http_version)
        return refuse(400, "malformed HTTP version");
    if (version[5] != '1')
        return refuse(505, "HTTP version " + std::string(version.substr(5)) + " not supported");
    m_head.method = w[0];
    m_head.target = w[1];
    // HTTP/1.x with a minor version above 1 is answered as 1.1 (RFC 9110 §2.5).
    m_head.version = version[7] == '0' ? "HTTP/1.0" : "HTTP/1.1";
    m_line.clear();
    m_state = State::field_line;
    return Step::more;
}

HeadReader::Step HeadReader::end_field_line() {
    if (m_line.empty())
        return finish();
    if (is_space(m_line.front()))
        return refuse(400, "a folded header field (obsolete line folding is not accepted)");
    if (m_colon == std::string::npos)
        return refuse(400, "a header line without a colon");
    const std::string_view line(m_line);
    const auto name = line.substr(0, m_colon);
    if (!is_token(name))
        return refuse(400, "malformed header field name");
    const auto value = trim(line.substr(m_colon + 1));
    if (value.size() > k_max_field_value_bytes)
        return refuse(431, "a header field value longer than " +
                               std::to_string(k_max_field_value_bytes) + " bytes");
    if (m_head.fields.size() >= k_max_fields)
        return refuse(431, "more than " + std::to_string(k_max_fields) + " header fields");
    m_head.fields.emplace_back(std::string(name), std::string(value));
    m_line.clear();
    m_colon = std::string::npos;
    return Step::more;
}

HeadReader::Step HeadReader::finish() {
    const std::pair<std::string, std::string>* length = nullptr;
    const std::pair<std::string, std::string>* coding = nullptr;
    for (const auto& field : m_head.fields) {
        const bool is_length = iequals(field.first, "Content-Length");
        const bool is_coding = iequals(field.first, "Transfer-Encoding");
        if ((is_length && length) || (is_coding && coding))
            return refuse(400, "more than one " + field.first + " header field");
        if (is_length)
            length = &field;
        if (is_coding)
            coding = &field;
    }
    if (length && coding)
        return refuse(400, "both Transfer-Encoding and Content-Length");
    if (coding) {
        if (!iequals(coding->second, "chunked"))
            return refuse(501, "Transfer-Encoding '" + coding->second +
                                   "' not supported (only chunked)");
        m_head.chunked = true;
    }
    if (length) {
        const std::string& digits = length->second;
        std::uint64_t n = 0;
        const auto end = digits.data() + digits.size();
        if (digits.empty() || digits.size() > k_max_length_digits ||
            !std::all_of(digits.begin(), digits.end(),
                         [](char c) { return c >= '0' && c <= '9'; }) ||
            std::from_chars(digits.data(), end, n).ptr != end)
            return refuse(400, "Content-Length is not a number of bytes");
        m_head.content_length = n;
    }
    return Step::done;
}

} // namespace labctl::taskapi
