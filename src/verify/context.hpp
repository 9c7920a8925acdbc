#pragma once
// Private to src/verify: the state one running check shares with its helpers — its deadline, the
// result it builds, bounded HTTP calls and the jittered poll sleep.

#include <fmt/format.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include <labctl/core/duration.hpp>
#include <labctl/core/progress.hpp>
#include <labctl/verify/check.hpp>
#include <labctl/verify/http.hpp>
#include <labctl/verify/verify.hpp>

namespace labctl::verify::detail {

using Clock = std::chrono::steady_clock;

/// What one poll attempt concluded: finished (pass or fail) or "not yet" with the reason.
struct Attempt {
    enum Kind { pass, fail, again } kind = again;
    std::string message;
};
inline Attempt passed(std::string m) {
    return {Attempt::pass, std::move(m)};
}
inline Attempt failed(std::string m) {
    return {Attempt::fail, std::move(m)};
}
inline Attempt again(std::string m) {
    return {Attempt::again, std::move(m)};
}

class CheckContext {
public:
    CheckContext(const Options& options, std::string name);

    const Options& options() const { return m_options; }
    CheckResult& result() { return m_result; }
    std::chrono::milliseconds remaining() const;
    bool expired() const { return remaining().count() <= 0; }

    /// Endpoint base URL for a service (no trailing slash).
    std::string endpoint(const std::string& service) const;

    /// A request bounded by min(per-request cap, time left); recorded as evidence with `note`.
    HttpResponse send(HttpRequest request, const std::string& note = {});
    HttpResponse get(const std::string& url, const std::string& note = {});
    /// Adds evidence for a response already made (note may be set later through the reference).
    Evidence& record(const std::string& method_url, const HttpResponse& response,
                     const std::string& note);

    /// Sleeps the poll interval ±25 % (never past the deadline); false when no time is left.
    bool sleep_poll();

    /// Repeats `attempt` (evidence cleared before each) until it finishes or the deadline. An
    /// attempt the deadline cut short (a request it ended or never let start) says less than
    /// the one before it, so the deadline message then quotes the last complete attempt.
    template <typename F>
    CheckResult poll(F attempt) {
        std::string last_complete;
        // Shown from the first "not yet" on (a check that passes at once shows nothing): the live
        // line on a terminal, an event line at most every 10 s elsewhere.
        std::optional<Progress> progress;
        for (;;) {
            ++m_result.attempts;
            m_result.evidence.clear();
            m_cut_short = false;
            Attempt a = attempt();
            if (a.kind != Attempt::again)
                return finish(a.kind == Attempt::pass ? Status::pass : Status::fail, a.message);
            if (!m_cut_short)
                last_complete = a.message;
            else if (!last_complete.empty())
                a.message = last_complete;
            if (!progress)
                progress.emplace("verify " + m_result.name);
            // Short: parallel checks share the terminal's one status line.
            progress->update(
                fmt::format("attempt {}, {} left: {}", m_result.attempts,
                            format_duration(remaining()), excerpt(a.message, 60)),
                {{"check", m_result.name}, {"attempt", std::to_string(m_result.attempts)}});
            if (!sleep_poll())
                return finish(Status::fail, deadline_message(a.message));
        }
    }

    CheckResult finish(Status status, std::string message);
    std::string deadline_message(const std::string& last) const;

private:
    const Options& m_options;
    CheckResult m_result;
    Clock::time_point m_start;
    Clock::time_point m_deadline;
    std::chrono::milliseconds m_budget;
    bool m_cut_short = false; ///< the current attempt had a request the deadline cut short
};

/// Parses a JSON body; nullopt when it is not JSON.
std::optional<nlohmann::json> parse_json(const std::string& body);

/// The error text of a failed request: "HTTP 503: excerpt" or the network error.
std::string describe(const HttpResponse& r);

/// Why an answer that should be JSON cannot be used: describe(r) when its status is not 200, else
/// "HTTP 200, not valid JSON: <excerpt>" (`j` empty) or "HTTP 200, JSON of an unexpected shape:
/// <excerpt>" (it parsed, but lacks what the service's API documents).
std::string describe_json(const HttpResponse& r, const std::optional<nlohmann::json>& j);

/// The member `key` of `j`, or null when `j` is no object or has no such member.
const nlohmann::json* member(const nlohmann::json& j, const char* key);
/// The string member `key` of `j`, or "" when `j` is no object or the member is missing or is not
/// a string (nlohmann's value() throws on a member of another type).
std::string string_member(const nlohmann::json& j, const char* key);

// The checks (checks_*.cpp).
CheckResult stack_health(CheckContext& c);
CheckResult prometheus_targets(CheckContext& c);
CheckResult prometheus_sli(CheckContext& c);
CheckResult trace_e2e(CheckContext& c);
CheckResult logs_correlated(CheckContext& c);
CheckResult grafana_provisioned(CheckContext& c);
CheckResult nginx_resilience(CheckContext& c);
CheckResult ssh_hardened(CheckContext& c);
CheckResult host_hardened(CheckContext& c);

} // namespace labctl::verify::detail
