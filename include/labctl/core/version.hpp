#pragma once
// Build identity printed by `labctl version`.

#include <string_view>

namespace labctl {

std::string_view version();
std::string_view git_revision();

} // namespace labctl
