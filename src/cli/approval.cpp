#include "approval.hpp"

#include <fmt/format.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <mutex>

#include <labctl/core/error.hpp>
#include <labctl/core/signals.hpp>
#include <labctl/core/terminal.hpp>

namespace labctl::cli {

namespace {

constexpr auto k_answer_deadline = std::chrono::minutes(10);

std::string listed(const provision::Plan& plan) {
    std::string out;
    for (const provision::PlanItem* i : plan.disruptive())
        out += fmt::format("\n  {} {} {}: {}", provision::action_name(i->action),
                           provision::kind_name(i->kind), i->name, i->detail);
    return out;
}

/// One line from the terminal, polled so that Ctrl-C and the deadline end the wait.
std::string read_answer() {
    const auto until = std::chrono::steady_clock::now() + k_answer_deadline;
    std::string line;
    for (;;) {
        signals::check();
        if (std::chrono::steady_clock::now() >= until)
            throw usage_error("no answer within 10 minutes: nothing was changed",
                              "add --yes to apply these changes without being asked");
        pollfd p{STDIN_FILENO, POLLIN, 0};
        const int r = ::poll(&p, 1, 250);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            throw Error(ExitCode::internal,
                        fmt::format("reading the answer: {}", std::strerror(errno)));
        if (r == 0)
            continue;
        char c = 0;
        const ssize_t n = ::read(STDIN_FILENO, &c, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || c == '\n')
            return line;
        line += c;
    }
}

} // namespace

std::function<void(const provision::Plan&)> approval(bool yes) {
    if (yes)
        return {};
    return [](const provision::Plan& plan) {
        // Several hosts of a lab plan at once: one question at a time.
        static std::mutex asking;
        const std::lock_guard lock(asking);
        const std::string changes = listed(plan);
        if (!terminal::is_tty(STDIN_FILENO) || !terminal::is_tty(STDERR_FILENO))
            throw usage_error(
                fmt::format("these changes restart a running VM or lose data, and there is no "
                            "terminal to ask on; nothing was changed:{}",
                            changes),
                "'labctl plan' shows every change; add --yes to apply them");
        std::fprintf(stderr,
                     "These changes restart a running VM or lose data (%s):%s\nApply them? "
                     "[y/N] ",
                     plan.uri.c_str(), changes.c_str());
        std::fflush(stderr);
        const std::string answer = read_answer();
        if (answer != "y" && answer != "Y" && answer != "yes")
            throw usage_error("not applied: the answer was not yes; nothing was changed",
                              "add --yes to apply these changes without being asked");
    };
}

} // namespace labctl::cli
