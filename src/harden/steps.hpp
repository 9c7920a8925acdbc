#pragma once
// The steps of a hardening run over its first session: root commands whose failure throws
// Error(harden) naming the step, and the report line of each step done (Ctrl-C counts there).

#include <chrono>
#include <string>

#include <labctl/harden/apply.hpp>
#include <labctl/remote/session.hpp>

namespace labctl::harden::detail {

class Steps {
public:
    Steps(remote::Session& s, HardenReport& r) : m_session(s), m_report(r) {}

    /// Runs `cmd` as root; its output. Throws Error(harden) naming `step` when it fails.
    std::string sudo(const std::string& step, const std::string& cmd,
                     std::chrono::seconds timeout = std::chrono::seconds(60));
    /// Logs and reports a step, then throws Interrupted after a Ctrl-C: the commands that
    /// started before the signal ran to their end.
    void done(const std::string& step, const std::string& detail);

private:
    remote::Session& m_session;
    HardenReport& m_report;
};

} // namespace labctl::harden::detail
