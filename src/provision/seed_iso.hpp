#pragma once
// Private to src/provision: the read loop over libisofs' burn source that build_seed_iso runs,
// apart from libisofs so that tests can feed it a failing or short source (libisofs' in-memory
// streams cannot be made to fail).

#include <cstdint>
#include <functional>
#include <string>

namespace labctl::provision {

/// Reads the image in 2048-byte blocks: `read(buf, 2048)` returns the bytes it put in buf, 0 at
/// the end or < 0 on failure. `expected` is the size libisofs announced (< 0: unknown). Throws
/// Error(internal) "cannot build the cloud-init seed: libisofs failed|stopped after N of M bytes"
/// on a read error, an empty image, a partial block or fewer (or more) bytes than announced:
/// never a shorter image.
std::string read_iso_image(const std::function<int(unsigned char* buf, int size)>& read,
                           std::int64_t expected);

} // namespace labctl::provision
