#pragma once
// A problem found in lab.yaml (or its environment), with where it is and how to fix it.

#include <string>
#include <vector>

namespace labctl::config {

/// 1-based line and column; 0 means "whole file" / unknown.
struct SourceLocation {
    std::string file;
    int line = 0;
    int column = 0;
};

enum class Severity { error, warning };

struct Diagnostic {
    Severity severity = Severity::error;
    SourceLocation where;
    std::string message; ///< what is wrong, one line
    std::string hint;    ///< how to fix it; may be empty
};

/// "lab.yaml:3:5: error: <message>" and, when there is a hint, "\n  hint: <hint>".
std::string format(const Diagnostic& d);

bool has_errors(const std::vector<Diagnostic>& diagnostics);

} // namespace labctl::config
