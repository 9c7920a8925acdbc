#include "steps.hpp"

#include <fmt/format.h>

#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/signals.hpp>
#include <labctl/core/text.hpp>

namespace labctl::harden::detail {

std::string Steps::sudo(const std::string& step, const std::string& cmd,
                        std::chrono::seconds timeout) {
    const auto r = m_session.exec(cmd, {.timeout = timeout, .sudo = true});
    if (!r.ok())
        throw Error(ExitCode::harden,
                    fmt::format("hardening step '{}' failed{}: {}", step,
                                r.timed_out ? fmt::format(" (timed out after {}s)", timeout.count())
                                            : fmt::format(" (exit {})", r.exit_status),
                                trim(r.err.empty() ? r.out : r.err)));
    return r.out;
}

void Steps::done(const std::string& step, const std::string& detail) {
    log::info("harden {}: {}: {}", m_session.endpoint().host, step, detail);
    m_report.steps.push_back({step, detail});
    signals::check();
}

} // namespace labctl::harden::detail
