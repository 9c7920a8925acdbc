#include <algorithm>
#include <cctype>

#include <labctl/core/text.hpp>
#include <labctl/image/checksums.hpp>

namespace labctl::image {

namespace {

bool is_hex(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isxdigit(static_cast<unsigned char>(c)) != 0;
    });
}

std::string algorithm_of_length(std::size_t n) {
    return n == 64 ? "sha256" : n == 128 ? "sha512" : "";
}

struct Entry {
    std::string algorithm;
    std::string hex;
    std::string name;
};

/// One line of a checksum file, in either layout; nullopt for comments and anything else.
std::optional<Entry> parse_line(std::string_view line) {
    line = trim(line);
    if (line.empty() || line.front() == '#')
        return std::nullopt;
    // BSD: "SHA512 (name) = hex".
    if (const auto open = line.find(" ("); open != std::string_view::npos) {
        const auto close = line.rfind(") = ");
        if (close != std::string_view::npos && close > open) {
            const auto tag = lower(line.substr(0, open));
            const auto hex = line.substr(close + 4);
            if ((tag == "sha256" || tag == "sha512") && is_hex(hex) &&
                algorithm_of_length(hex.size()) == tag)
                return Entry{tag, lower(hex), std::string(line.substr(open + 2, close - open - 2))};
        }
    }
    // GNU: "hex  name" (text mode) or "hex *name" (binary mode).
    const auto space = line.find(' ');
    if (space == std::string_view::npos)
        return std::nullopt;
    const auto hex = line.substr(0, space);
    const auto algorithm = algorithm_of_length(hex.size());
    if (algorithm.empty() || !is_hex(hex) || space + 1 >= line.size())
        return std::nullopt;
    auto name = line.substr(space + 1);
    if (name.front() == ' ' || name.front() == '*')
        name.remove_prefix(1);
    if (name.empty())
        return std::nullopt;
    return Entry{algorithm, lower(hex), std::string(name)};
}

/// Every entry of a checksum text, in order.
std::vector<Entry> entries(std::string_view text) {
    std::vector<Entry> out;
    std::string buf(text);
    take_lines(
        buf,
        [&out](const std::string& line) {
            if (auto e = parse_line(line))
                out.push_back(std::move(*e));
        },
        true);
    return out;
}

std::string_view without_dot_slash(std::string_view name) {
    while (name.starts_with("./"))
        name.remove_prefix(2);
    return name;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

} // namespace

std::optional<ExpectedDigest> find_checksum(std::string_view text, std::string_view file_name,
                                            std::string_view algorithm) {
    for (const auto& e : entries(text)) {
        if (without_dot_slash(e.name) != without_dot_slash(file_name))
            continue;
        if (!algorithm.empty() && e.algorithm != algorithm)
            continue;
        return ExpectedDigest{e.algorithm, e.hex};
    }
    return std::nullopt;
}

std::vector<std::string> checksum_names(std::string_view text, std::size_t limit) {
    std::vector<std::string> out;
    for (const auto& e : entries(text)) {
        if (out.size() >= limit)
            break;
        out.emplace_back(without_dot_slash(e.name));
    }
    return out;
}

std::string url_file_name(std::string_view url) {
    url = url.substr(0, url.find_first_of("?#"));
    while (!url.empty() && url.back() == '/')
        url.remove_suffix(1);
    const auto slash = url.rfind('/');
    const auto raw = slash == std::string_view::npos ? url : url.substr(slash + 1);
    std::string out;
    for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '%' && i + 2 < raw.size()) {
            const int hi = hex_value(raw[i + 1]);
            const int lo = hex_value(raw[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out += static_cast<char>(hi * 16 + lo);
                i += 2;
                continue;
            }
        }
        out += raw[i];
    }
    return out;
}

std::string checksums_algorithm(std::string_view url) {
    const auto name = lower(url_file_name(url));
    if (name.find("sha512") != std::string::npos)
        return "sha512";
    if (name.find("sha256") != std::string::npos)
        return "sha256";
    return "";
}

} // namespace labctl::image
