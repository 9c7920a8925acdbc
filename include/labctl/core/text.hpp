#pragma once
// Text helpers shared by modules.

#include <cstddef>
#include <string>

namespace labctl {

/// The last `n` non-empty lines of a tool's output, each on its own line indented by two spaces
/// and preceded by a newline (for error messages); empty when there are none.
std::string tail_lines(const std::string& text, std::size_t n);

} // namespace labctl
