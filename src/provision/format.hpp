#pragma once
// Private to src/provision: sizes for humans in checks and plan details.

#include <cstdint>
#include <string>

namespace labctl::provision {

/// "100 GiB" when exact, otherwise one decimal in the largest fitting binary unit: "78.3 GiB".
std::string approx_size(std::uint64_t bytes);

} // namespace labctl::provision
