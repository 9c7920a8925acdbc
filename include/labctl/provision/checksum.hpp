#pragma once
// Checksums of files labctl uploads (base images are verified against image.sha256): core's
// checked file digest (labctl/core/encoding.hpp), under provision's name.

#include <labctl/core/encoding.hpp>

namespace labctl::provision {

using labctl::sha256_file_hex;

} // namespace labctl::provision
