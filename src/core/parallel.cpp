// parallel_for: a bounded pool of std::threads pulling indices from one atomic counter.

#include <algorithm>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include <labctl/core/parallel.hpp>

namespace labctl {

void parallel_for(std::size_t n, std::size_t workers, const std::function<void(std::size_t)>& body,
                  std::atomic<bool>* cancelled) {
    std::atomic<bool> local_cancel{false};
    std::atomic<bool>& stop = cancelled != nullptr ? *cancelled : local_cancel;
    workers = workers == 0 ? n : std::min(workers, n);
    if (workers <= 1) {
        // In order, in this thread: the first failure ends the run, as in the pool.
        for (std::size_t i = 0; i < n && !stop.load(); ++i) {
            try {
                body(i);
            } catch (...) {
                stop = true;
                throw;
            }
        }
        return;
    }
    std::atomic<std::size_t> next{0};
    std::mutex error_mutex;
    std::exception_ptr first_error;
    auto work = [&] {
        for (std::size_t i = next++; i < n && !stop.load(); i = next++) {
            try {
                body(i);
            } catch (...) {
                // Recorded before the others are told to stop: a sibling that gives up because
                // of the flag ("wait cancelled") must not be reported in place of the cause.
                {
                    const std::lock_guard lock(error_mutex);
                    if (!first_error)
                        first_error = std::current_exception();
                }
                stop = true;
            }
        }
    };
    std::vector<std::thread> threads;
    threads.reserve(workers);
    // If a thread cannot be created, the ones already running must still be joined.
    try {
        for (std::size_t w = 0; w < workers; ++w)
            threads.emplace_back(work);
    } catch (...) {
        stop = true;
        for (auto& t : threads)
            t.join();
        throw;
    }
    for (auto& t : threads)
        t.join();
    if (first_error)
        std::rethrow_exception(first_error);
}

} // namespace labctl
