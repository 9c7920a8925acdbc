#include <fmt/format.h>

#include <algorithm>

#include <labctl/config/diagnostic.hpp>

namespace labctl::config {

std::string format(const Diagnostic& d) {
    const char* severity = d.severity == Severity::error ? "error" : "warning";
    std::string out;
    if (d.where.line > 0 && d.where.column > 0)
        out = fmt::format("{}:{}:{}: {}: {}", d.where.file, d.where.line, d.where.column, severity,
                          d.message);
    else if (d.where.line > 0)
        out = fmt::format("{}:{}: {}: {}", d.where.file, d.where.line, severity, d.message);
    else
        out = fmt::format("{}: {}: {}", d.where.file, severity, d.message);
    if (!d.hint.empty())
        out += fmt::format("\n  hint: {}", d.hint);
    return out;
}

bool has_errors(const std::vector<Diagnostic>& diagnostics) {
    return std::any_of(diagnostics.begin(), diagnostics.end(),
                       [](const Diagnostic& d) { return d.severity == Severity::error; });
}

} // namespace labctl::config
