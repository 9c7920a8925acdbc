#include "revert_timer.hpp"

#include <fmt/format.h>

#include <labctl/core/text.hpp>

namespace labctl::harden::detail {

std::string RevertTimer::script_text(const std::string& body) const {
    // Started by the detached sleeper it sleeps itself ("now" skips that). It writes its pid only
    // after setsid made it a session leader, so once the pid file exists nothing that ends with
    // the SSH session (sudo's pty, sshd's cleanup) can kill it.
    return fmt::format(R"(#!/bin/sh
if [ "${{1:-}}" != now ]; then
    trap '' HUP
    echo $$ > {pid}
    sleep {secs}
fi
{body}
rm -f {self} {pid}
)",
                       fmt::arg("pid", shell_quote(pid)), fmt::arg("secs", after.count()),
                       fmt::arg("body", body), fmt::arg("self", shell_quote(script)));
}

std::string RevertTimer::arm_command() const {
    if (systemd)
        return fmt::format("systemctl stop {0}.timer 2>/dev/null; systemctl reset-failed "
                           "{0}.service 2>/dev/null; systemd-run --quiet --unit={0} "
                           "--on-active={1}s /bin/sh {2} now",
                           unit, after.count(), shell_quote(script));
    return fmt::format("rm -f {0}; setsid -f sh {1} </dev/null >/dev/null 2>&1; i=0; while [ ! "
                       "-s {0} ] && [ $i -lt 150 ]; do sleep 0.1; i=$((i+1)); done; test -s {0}",
                       shell_quote(pid), shell_quote(script));
}

std::string RevertTimer::disarm_command() const {
    if (systemd)
        return fmt::format("systemctl stop {}.timer 2>/dev/null; rm -f {} {}", unit,
                           shell_quote(script), shell_quote(pid));
    return fmt::format("if [ -s {0} ]; then kill -- -$(cat {0}) 2>/dev/null; fi; rm -f {0} {1}",
                       shell_quote(pid), shell_quote(script));
}

} // namespace labctl::harden::detail
