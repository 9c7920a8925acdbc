#pragma once
// Checksums of files labctl uploads (base images are verified against image.sha256). The SHA-256
// itself is core's (labctl/core/encoding.hpp).

#include <string>

namespace labctl::provision {

/// SHA-256 of a file's contents as 64 lowercase hex characters, read in 1 MiB chunks; throws
/// Error(usage) when the file cannot be read.
std::string sha256_file_hex(const std::string& path);

} // namespace labctl::provision
