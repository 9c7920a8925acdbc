#pragma once
// Redaction of secrets (private key blocks, passwords, tokens, bearer credentials) from any text
// before it is logged or reported.

#include <string>
#include <string_view>

namespace labctl {

/// Returns `text` with every secret replaced by `<redacted>`.
std::string redact(std::string_view text);

} // namespace labctl
