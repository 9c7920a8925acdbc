#pragma once
// The wire tracer's id generator: random trace and span ids (the SDK's RandomIdGenerator's job).

#include <cstdint>
#include <cstring>

namespace labctl::taskapi::wire {

/// A random 64-bit id from a per-thread splitmix64 generator seeded from std::random_device;
/// never zero, which would be an invalid id.
std::uint64_t random_id64();

/// Writes `v` into 8 bytes of an id at `out`.
inline void put_id64(std::uint8_t* out, std::uint64_t v) {
    std::memcpy(out, &v, sizeof v);
}

} // namespace labctl::taskapi::wire
