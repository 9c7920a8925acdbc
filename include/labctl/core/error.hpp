#pragma once
// Error: the exception that crosses module boundaries. It carries the exit code it maps to, a
// one-line message and at most one hint, which main prints as `labctl: error:` / `hint:`.

#include <stdexcept>
#include <string>

#include <labctl/core/exit_code.hpp>

namespace labctl {

class Error : public std::runtime_error {
public:
    Error(ExitCode code, std::string message, std::string hint = {})
        : std::runtime_error(std::move(message)), m_code(code), m_hint(std::move(hint)) {}

    ExitCode code() const noexcept { return m_code; }
    const std::string& hint() const noexcept { return m_hint; }

private:
    ExitCode m_code;
    std::string m_hint;
};

/// Usage or configuration error (exit 2).
inline Error usage_error(std::string message, std::string hint = {}) {
    return Error(ExitCode::usage, std::move(message), std::move(hint));
}

/// Raised when SIGINT/SIGTERM arrived; callers clean up and rethrow (exit 130).
class Interrupted : public Error {
public:
    Interrupted() : Error(ExitCode::interrupted, "interrupted") {}
};

} // namespace labctl
