#pragma once
// Durable file writes: a file is complete or absent, also after a crash or Ctrl-C.

#include <sys/types.h>

#include <string>

namespace labctl {

/// Writes `content` to a temporary file beside `path` (mode `mode`), fsyncs it, renames it over
/// `path` and fsyncs the directory. Throws Error(preflight) naming the path and errno's text.
void write_file_atomic(const std::string& path, const std::string& content, mode_t mode = 0644);

/// Like write_file_atomic, but never replaces an existing `path` (the temporary is linked into
/// place): false when `path` already existed, so two concurrent runs agree on one content.
bool create_file_exclusive(const std::string& path, const std::string& content, mode_t mode = 0600);

/// Copies the regular file `from` to `to` the way write_file_atomic writes: through a temporary
/// beside `to` carrying `from`'s permission bits, fsynced, renamed over `to`, the directory
/// fsynced; after a failure `to` is as it was and the temporary is gone. Throws Error(preflight)
/// naming the path and errno's text.
void copy_file_atomic(const std::string& from, const std::string& to);

/// The whole content of the file `path`, every read checked. Throws Error(usage) "cannot read
/// PATH: <errno's text>": the files read this way are ones the user or the lab names.
std::string read_file(const std::string& path);

/// `bytes` random bytes from the kernel (getrandom), as unpadded base64url text.
std::string random_token(std::size_t bytes);

} // namespace labctl
