#include <unistd.h>

#include <atomic>
#include <csignal>

#include <labctl/core/error.hpp>
#include <labctl/core/signals.hpp>

namespace labctl::signals {
namespace {

std::atomic<int> g_count{0};

extern "C" void on_signal(int sig) {
    if (g_count.fetch_add(1) >= 1) {
        // Second signal: the user insists. Exit without cleanup, async-signal-safely.
        _exit(128 + sig);
    }
}

} // namespace

void install() {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    // Writing to a closed pipe (`labctl ... | head`) must be an EPIPE error, not a silent death.
    std::signal(SIGPIPE, SIG_IGN);
}

bool interrupted() noexcept {
    return g_count.load() > 0;
}

void check() {
    if (interrupted())
        throw Interrupted();
}

void reset() noexcept {
    g_count.store(0);
}

} // namespace labctl::signals
