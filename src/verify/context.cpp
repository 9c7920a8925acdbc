#include "context.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <random>
#include <thread>

#include <labctl/core/duration.hpp>
#include <labctl/core/signals.hpp>

namespace labctl::verify::detail {

namespace {
constexpr std::chrono::milliseconds k_request_cap{10'000};
}

CheckContext::CheckContext(const Options& options, std::string name)
    : m_options(options), m_start(Clock::now()), m_budget(deadline_for(options, name)) {
    m_result.name = std::move(name);
    m_deadline = m_start + m_budget;
}

std::chrono::milliseconds CheckContext::remaining() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(m_deadline - Clock::now());
}

std::string CheckContext::endpoint(const std::string& service) const {
    const auto it = m_options.endpoints.find(service);
    std::string url = it != m_options.endpoints.end()
                          ? it->second
                          : default_endpoints(m_options.host).at(service);
    while (!url.empty() && url.back() == '/')
        url.pop_back();
    return url;
}

HttpResponse CheckContext::send(HttpRequest request, const std::string& note) {
    const auto left = remaining();
    if (left.count() <= 0) {
        m_cut_short = true;
        HttpResponse r;
        r.error = "deadline reached before the request";
        record(request.method + " " + request.url, r, note);
        return r;
    }
    const auto own = std::min(request.timeout, k_request_cap);
    request.timeout = std::min(own, left);
    const auto r = http_request(request);
    // No answer within a timeout the deadline shortened: the deadline, not the service, ended it.
    if (r.status == 0 && left < own)
        m_cut_short = true;
    record(request.method + " " + request.url, r, note);
    return r;
}

HttpResponse CheckContext::get(const std::string& url, const std::string& note) {
    HttpRequest req;
    req.url = url;
    req.timeout = k_request_cap;
    return send(req, note);
}

Evidence& CheckContext::record(const std::string& method_url, const HttpResponse& response,
                               const std::string& note) {
    Evidence e;
    e.url = method_url;
    e.status = response.status;
    e.excerpt = response.status > 0 ? excerpt(response.body) : response.error;
    e.note = note;
    m_result.evidence.push_back(std::move(e));
    return m_result.evidence.back();
}

bool CheckContext::sleep_poll() {
    static thread_local std::mt19937 rng{std::random_device{}()};
    const auto base = m_options.poll_interval.count();
    std::uniform_int_distribution<long long> jitter(-base / 4, base / 4);
    auto wait = std::chrono::milliseconds(std::max<long long>(base + jitter(rng), 10));
    const auto left = remaining();
    if (left.count() <= 0)
        return false;
    // Do not sleep past the deadline; wake up just before it for one last attempt.
    if (wait >= left) {
        if (left < std::chrono::milliseconds(50))
            return false;
        wait = left - std::chrono::milliseconds(20);
    }
    // Sleep in slices so Ctrl-C ends every check promptly (the CLI then exits 130).
    const auto until = Clock::now() + wait;
    while (Clock::now() < until) {
        if (signals::interrupted())
            return false;
        std::this_thread::sleep_for(
            std::min<Clock::duration>(until - Clock::now(), std::chrono::milliseconds(50)));
    }
    return !expired() && !signals::interrupted();
}

CheckResult CheckContext::finish(Status status, std::string message) {
    m_result.status = status;
    m_result.message = std::move(message);
    m_result.duration =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - m_start);
    return m_result;
}

std::string CheckContext::deadline_message(const std::string& last) const {
    return fmt::format("deadline {} reached after {} attempt{}: {}", format_duration(m_budget),
                       m_result.attempts, m_result.attempts == 1 ? "" : "s", last);
}

std::optional<nlohmann::json> parse_json(const std::string& body) {
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_discarded())
        return std::nullopt;
    return j;
}

std::string describe(const HttpResponse& r) {
    if (r.status == 0)
        return r.error.empty() ? "no answer" : r.error;
    return fmt::format("HTTP {}: {}", r.status, excerpt(r.body, 120));
}

std::string describe_json(const HttpResponse& r, const std::optional<nlohmann::json>& j) {
    if (r.status != 200)
        return describe(r);
    return fmt::format("HTTP 200, {}: {}", j ? "JSON of an unexpected shape" : "not valid JSON",
                       excerpt(r.body, 120));
}

const nlohmann::json* member(const nlohmann::json& j, const char* key) {
    if (!j.is_object())
        return nullptr;
    const auto it = j.find(key);
    return it == j.end() ? nullptr : &*it;
}

std::string string_member(const nlohmann::json& j, const char* key) {
    const auto* m = member(j, key);
    return m && m->is_string() ? m->get<std::string>() : std::string();
}

} // namespace labctl::verify::detail
