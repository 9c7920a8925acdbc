#include "prom.hpp"

#include <fmt/format.h>

#include <regex>

namespace labctl::verify::detail {

namespace {
constexpr std::chrono::milliseconds k_traffic_timeout{3000};
} // namespace

PromAnswer evaluate(CheckContext& c, const std::string& expr, const std::string& note) {
    const std::string url = c.endpoint("prometheus") + "/api/v1/query?query=" + url_encode(expr);
    const auto r = c.get(url, note);
    PromAnswer a;
    const auto j = parse_json(r.body);
    const auto* data = j ? member(*j, "data") : nullptr;
    const auto* result = data ? member(*data, "result") : nullptr;
    if (r.status == 200 && j && string_member(*j, "status") == "success" && result) {
        a.kind = PromAnswer::ok;
        const auto type = member(*data, "resultType") ? string_member(*data, "resultType")
                                                      : std::string("vector");
        // A scalar or string always has a value; a vector or matrix has one entry per series.
        a.series = result->is_array() && type != "scalar" && type != "string" ? result->size() : 1;
        return a;
    }
    a.kind = (r.status == 400 || r.status == 422) ? PromAnswer::bad_query : PromAnswer::unavailable;
    // Prometheus's errors: {"status":"error","errorType":"bad_data","error":"…"}.
    const bool error_answer =
        r.status != 0 && j && (member(*j, "errorType") || member(*j, "error"));
    a.detail = error_answer ? fmt::format("{}: {}",
                                          member(*j, "errorType") ? string_member(*j, "errorType")
                                                                  : std::string("?"),
                                          string_member(*j, "error"))
                            : describe_json(r, j);
    return a;
}

std::string send_sli_traffic(CheckContext& c) {
    struct Call {
        const char* method;
        const char* target;
        int times;
    };
    // GETs make the request/latency series; the smoke route always runs SQL (reads only), which
    // makes db_query_duration_seconds exist; GET /api/tasks may be served from the API's cache.
    static const Call k_calls[] = {{"GET", "/api/tasks", 5},
                                   {"POST", "/api/smoke/db?ops=1&type=read", 1}};
    std::vector<std::string> bad;
    int ok = 0;
    for (const auto& call : k_calls) {
        for (int i = 0; i < call.times && !c.expired(); ++i) {
            HttpRequest req;
            req.method = call.method;
            req.url = c.endpoint("nginx") + call.target;
            req.timeout = k_traffic_timeout;
            const auto r = http_request(req);
            if (i == 0)
                c.record(req.method + " " + req.url, r, "traffic for the SLI series");
            if (r.status >= 200 && r.status < 300)
                ++ok;
            else
                bad.push_back(fmt::format("{} {}: {}", call.method, call.target, describe(r)));
        }
    }
    if (bad.empty())
        return {};
    return fmt::format("traffic through nginx: {} ok, {} failed ({})", ok, bad.size(), bad.front());
}

std::string substitute_grafana_variables(std::string expr) {
    static const std::vector<std::pair<std::regex, std::string>> k_vars{
        {std::regex(R"(\$\{?__rate_interval\}?)"), "1m"},
        {std::regex(R"(\$\{?__interval_ms\}?)"), "60000"},
        {std::regex(R"(\$\{?__interval\}?)"), "1m"},
        {std::regex(R"(\$\{?__range_s\}?)"), "300"},
        {std::regex(R"(\$\{?__range\}?)"), "5m"},
    };
    for (const auto& [re, value] : k_vars)
        expr = std::regex_replace(expr, re, value);
    return expr;
}

} // namespace labctl::verify::detail
