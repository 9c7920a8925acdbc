#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include <labctl/core/parallel.hpp>

using labctl::parallel_for;
using namespace std::chrono_literals;

TEST_CASE("parallel_for runs every index exactly once on the workers it is given",
          "[core][parallel]") {
    for (const std::size_t workers : {std::size_t{0}, std::size_t{1}, std::size_t{3}}) {
        std::mutex m;
        std::multiset<std::size_t> seen;
        std::set<std::thread::id> threads;
        parallel_for(10, workers, [&](std::size_t i) {
            std::this_thread::sleep_for(1ms);
            const std::lock_guard lock(m);
            seen.insert(i);
            threads.insert(std::this_thread::get_id());
        });
        CHECK(seen.size() == 10);
        for (std::size_t i = 0; i < 10; ++i)
            CHECK(seen.count(i) == 1);
        if (workers == 1) {
            CHECK(threads == std::set{std::this_thread::get_id()});
        } else {
            CHECK(threads.size() <= (workers == 0 ? 10 : workers));
            CHECK(threads.count(std::this_thread::get_id()) == 0);
        }
    }
}

TEST_CASE("parallel_for with one worker runs in order and stops at the first failure",
          "[core][parallel]") {
    std::vector<std::size_t> order;
    std::atomic<bool> cancelled{false};
    CHECK_THROWS_WITH(parallel_for(
                          5, 1,
                          [&](std::size_t i) {
                              order.push_back(i);
                              if (i == 2)
                                  throw std::runtime_error("vm 2 failed");
                          },
                          &cancelled),
                      "vm 2 failed");
    CHECK(order == std::vector<std::size_t>{0, 1, 2});
    CHECK(cancelled.load());
}

TEST_CASE("parallel_for: a failure cancels the running items, starts no new one and rethrows "
          "the first error",
          "[core][parallel]") {
    std::atomic<bool> cancelled{false};
    std::atomic<int> started{0}, saw_cancel{0};
    CHECK_THROWS_WITH(parallel_for(
                          50, 4,
                          [&](std::size_t i) {
                              ++started;
                              if (i == 0) {
                                  // Fail once the other three workers are inside their items.
                                  const auto by = std::chrono::steady_clock::now() + 10s;
                                  while (started.load() < 4 &&
                                         std::chrono::steady_clock::now() < by)
                                      std::this_thread::sleep_for(1ms);
                                  throw std::runtime_error("first");
                              }
                              // A long wait that polls the flag, as provisioning's waits do.
                              const auto end = std::chrono::steady_clock::now() + 10s;
                              while (std::chrono::steady_clock::now() < end) {
                                  if (cancelled.load()) {
                                      ++saw_cancel;
                                      throw std::runtime_error("given up");
                                  }
                                  std::this_thread::sleep_for(1ms);
                              }
                          },
                          &cancelled),
                      "first");
    CHECK(started.load() == 4); // the three others were running; nothing started after
    CHECK(saw_cancel.load() == 3);
}

TEST_CASE("parallel_for reports the failure that stopped the run, never a sibling's reaction to "
          "the stop",
          "[core][parallel]") {
    // A sibling that spins on the flag throws the moment it flips: were the flag set before the
    // cause is recorded, its "given up" would now and then win the race for first_error.
    int wrong = 0;
    for (int round = 0; round < 2000; ++round) {
        std::atomic<bool> cancelled{false};
        std::atomic<bool> spinning{false};
        try {
            parallel_for(
                2, 2,
                [&](std::size_t i) {
                    if (i == 0) {
                        while (!spinning.load())
                            std::this_thread::yield();
                        throw std::runtime_error("cause");
                    }
                    spinning = true;
                    while (!cancelled.load()) {
                    }
                    throw std::runtime_error("given up");
                },
                &cancelled);
        } catch (const std::runtime_error& e) {
            if (std::string(e.what()) != "cause")
                ++wrong;
        }
    }
    CHECK(wrong == 0);
}

TEST_CASE("parallel_for starts nothing when already cancelled, and zero items is a no-op",
          "[core][parallel]") {
    std::atomic<bool> cancelled{true};
    int calls = 0;
    parallel_for(
        5, 2, [&](std::size_t) { ++calls; }, &cancelled);
    parallel_for(0, 4, [&](std::size_t) { ++calls; });
    CHECK(calls == 0);
}
