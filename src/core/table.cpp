#include <algorithm>

#include <labctl/core/table.hpp>

namespace labctl {

std::size_t display_width(const std::string& s) {
    return static_cast<std::size_t>(
        std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

std::string Table::render() const {
    std::vector<std::size_t> widths(m_header.size(), 0);
    auto measure = [&](const std::vector<std::string>& row) {
        for (std::size_t i = 0; i < row.size() && i < widths.size(); ++i)
            widths[i] = std::max(widths[i], display_width(row[i]));
    };
    measure(m_header);
    for (const auto& r : m_rows)
        measure(r);
    std::string out;
    auto line = [&](const std::vector<std::string>& row) {
        std::string l;
        for (std::size_t i = 0; i < widths.size(); ++i) {
            const std::string cell = i < row.size() ? row[i] : "";
            l += cell;
            if (i + 1 < widths.size())
                l.append(widths[i] - display_width(cell) + 2, ' ');
        }
        while (!l.empty() && l.back() == ' ')
            l.pop_back();
        out += l + "\n";
    };
    line(m_header);
    for (const auto& r : m_rows)
        line(r);
    return out;
}

} // namespace labctl
