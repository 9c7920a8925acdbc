#pragma once
// The one worker pool: provisioning VMs and running verify checks both fan out through it.

#include <atomic>
#include <cstddef>
#include <functional>

namespace labctl {

/// Runs `body(i)` for every i in [0, n) on at most `workers` threads (0 = one per item; 1 runs
/// in the calling thread, in order). When a body throws, no further index starts, `*cancelled`
/// (when given) is set so bodies already running can stop at their next poll, and the first
/// exception is rethrown once every thread has joined. Items already set cancelled do not start.
void parallel_for(std::size_t n, std::size_t workers, const std::function<void(std::size_t)>& body,
                  std::atomic<bool>* cancelled = nullptr);

} // namespace labctl
