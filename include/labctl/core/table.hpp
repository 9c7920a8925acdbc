#pragma once
// A plain text table for stdout results: left-aligned columns, a header row, no box drawing, so
// it stays readable in CI logs and greppable.

#include <string>
#include <vector>

namespace labctl {

class Table {
public:
    explicit Table(std::vector<std::string> header) : m_header(std::move(header)) {}
    void add(std::vector<std::string> row) { m_rows.push_back(std::move(row)); }
    bool empty() const { return m_rows.empty(); }
    /// Columns padded to the widest cell (UTF-8 aware); the last column is never padded.
    std::string render() const;

private:
    std::vector<std::string> m_header;
    std::vector<std::vector<std::string>> m_rows;
};

/// Display width of a UTF-8 string (code points; labctl prints no wide characters).
std::size_t display_width(const std::string& s);

} // namespace labctl
