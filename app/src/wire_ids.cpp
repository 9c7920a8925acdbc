// The wire tracer's id generator: per-thread splitmix64 seeded from std::random_device.
#include "wire_ids.hpp"

#include <random>

namespace labctl::taskapi::wire {

/// Random ids from a per-thread splitmix64 generator seeded from std::random_device (the SDK
/// also draws its ids from a per-thread generator); never zero, which would be an invalid id.
std::uint64_t random_id64() {
    thread_local std::uint64_t t_state = [] {
        std::random_device device;
        return (static_cast<std::uint64_t>(device()) << 32) ^ device();
    }();
    for (;;) {
        std::uint64_t z = (t_state += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        if (z != 0) {
            return z;
        }
    }
}

} // namespace labctl::taskapi::wire
