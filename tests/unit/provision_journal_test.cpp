// The journal of a provision run (src/provision/journal.cpp): what the run made, undone newest
// first when it fails. Its undo steps take the network's lock (a DHCP host's removal), and
// dhcp_host adds to the journal while it holds that lock: a rollback that ran its undo steps under
// the journal's own lock would deadlock against it (the lock order the issue calls inverted).

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "../../src/provision/journal.hpp"

using labctl::provision::Journal;
using namespace std::chrono_literals;

namespace {

/// The interleaving that deadlocks on the old order, run to the end; the child's exit status:
/// 0 both entries undone, 3 the second one forgotten, 4 a wait gave up.
int rollback_while_an_entry_is_added() {
    Journal journal;
    std::mutex network; // provision's m_network_mutex
    std::atomic<bool> in_undo{false};
    std::mutex done_mutex;
    std::vector<std::string> done;
    journal.add("DHCP host 'vm1'", [&] {
        in_undo = true;
        const std::lock_guard lock(network); // waits for the other thread's dhcp_host
        const std::lock_guard d(done_mutex);
        done.push_back("vm1");
    });
    bool waited = true;
    std::atomic<bool> holds_network{false};
    std::thread dhcp_host([&] {
        const std::lock_guard lock(network);
        holds_network = true;
        const auto until = std::chrono::steady_clock::now() + 5s;
        while (!in_undo && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(1ms);
        waited = in_undo.load();
        std::this_thread::sleep_for(50ms); // the undo step is now blocked on the network's lock
        journal.add("DHCP host 'vm2'", [&] {
            const std::lock_guard d(done_mutex);
            done.push_back("vm2");
        });
    });
    while (!holds_network)
        std::this_thread::sleep_for(1ms);
    const Journal::Outcome out = journal.rollback();
    dhcp_host.join();
    if (!waited)
        return 4;
    if (out.removed != std::vector<std::string>{"DHCP host 'vm1'", "DHCP host 'vm2'"} ||
        done != std::vector<std::string>{"vm1", "vm2"} || !out.left.empty())
        return 3;
    return 0;
}

} // namespace

TEST_CASE("a rollback whose undo step needs the lock held by a thread adding to the journal ends "
          "within 10 s (no lock-order deadlock) and undoes the added entry too",
          "[provision][journal]") {
    // In a child process: on the inverted order the two threads never end, and the child is
    // killed at the bound instead of hanging the test.
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0)
        ::_exit(rollback_while_an_entry_is_added());
    const auto until = std::chrono::steady_clock::now() + 10s;
    int status = 0;
    pid_t done = 0;
    while ((done = ::waitpid(pid, &status, WNOHANG)) == 0 &&
           std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(20ms);
    if (done == 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        FAIL("the rollback deadlocked: still running after 10 s");
    }
    REQUIRE(WIFEXITED(status));
    INFO("child exit status " << WEXITSTATUS(status)
                              << " (3: the entry added during the rollback was not undone)");
    CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("a rollback undoes newest first, and reports a step that fails as left",
          "[provision][journal]") {
    Journal journal;
    std::vector<std::string> order;
    journal.add("network 'n'", [&] { order.push_back("network"); });
    journal.add("volume 'v'", [&] { throw std::runtime_error("libvirt refused"); });
    journal.add("domain 'd'", [&] { order.push_back("domain"); });
    const auto out = journal.rollback();
    CHECK(order == std::vector<std::string>{"domain", "network"});
    CHECK(out.removed == std::vector<std::string>{"domain 'd'", "network 'n'"});
    CHECK(out.left == std::vector<std::string>{"volume 'v'"});
    CHECK(journal.rollback().removed.empty()); // nothing is undone twice
}
