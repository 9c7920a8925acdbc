// stack.health, prometheus.targets, prometheus.sli and grafana.provisioned: passive checks of
// what the services report about themselves.

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <regex>

#include "context.hpp"

namespace labctl::verify::detail {

namespace {

constexpr std::chrono::milliseconds k_probe_timeout{3000};

std::string join(const std::vector<std::string>& parts, const char* sep = "; ") {
    std::string out;
    for (const auto& p : parts)
        out += (out.empty() ? "" : sep) + p;
    return out;
}

HttpResponse probe(CheckContext& c, const std::string& url) {
    HttpRequest req;
    req.url = url;
    req.timeout = k_probe_timeout;
    return c.send(req);
}

/// Sends a little traffic through nginx so the SLI series have samples.
void send_traffic(CheckContext& c, int requests) {
    for (int i = 0; i < requests && !c.expired(); ++i) {
        HttpRequest req;
        req.url = c.endpoint("nginx") + "/api/tasks";
        req.timeout = k_probe_timeout;
        const auto r = http_request(req);
        if (i == 0)
            c.record("GET " + req.url, r, "traffic for the SLI series");
    }
}

struct PromAnswer {
    enum Kind { ok, bad_query, unavailable } kind = unavailable;
    std::string detail;
    std::size_t series = 0;
};

/// Evaluates a PromQL expression: ok (values may be "NaN"), bad_query (400 bad_data, 422 —
/// waiting will not fix it) or unavailable (no answer, 503, ...).
PromAnswer evaluate(CheckContext& c, const std::string& expr, const std::string& note) {
    const std::string url = c.endpoint("prometheus") + "/api/v1/query?query=" + url_encode(expr);
    const auto r = c.get(url, note);
    PromAnswer a;
    const auto j = parse_json(r.body);
    const std::string error =
        j && j->is_object()
            ? fmt::format("{}: {}", j->value("errorType", "?"), j->value("error", ""))
            : describe(r);
    if (r.status == 200 && j && j->value("status", "") == "success") {
        a.kind = PromAnswer::ok;
        const auto& data = (*j)["data"];
        if (data.contains("result") && data["result"].is_array())
            a.series = data["result"].size();
        else if (data.contains("result"))
            a.series = 1;
        return a;
    }
    a.kind = (r.status == 400 || r.status == 422) ? PromAnswer::bad_query : PromAnswer::unavailable;
    a.detail = r.status == 0 ? describe(r) : error;
    return a;
}

/// Grafana template variables Prometheus does not know, replaced by fixed values.
std::string substitute_grafana_variables(std::string expr) {
    static const std::vector<std::pair<std::regex, std::string>> k_vars{
        {std::regex(R"(\$\{?__rate_interval\}?)"), "1m"},
        {std::regex(R"(\$\{?__interval\}?)"), "1m"},
        {std::regex(R"(\$\{?__range\}?)"), "5m"},
        {std::regex(R"(\$\{?__interval_ms\}?)"), "60000"},
        {std::regex(R"(\$\{?__range_s\}?)"), "300"},
    };
    for (const auto& [re, value] : k_vars)
        expr = std::regex_replace(expr, re, value);
    return expr;
}

struct PanelQuery {
    std::string panel;
    std::string expr;
};

bool is_prometheus_datasource(const nlohmann::json& ds) {
    if (ds.is_null())
        return true; // the default datasource is Prometheus (STACK.md §4)
    if (ds.is_string())
        return ds.get<std::string>().find("rometheus") != std::string::npos ||
               ds.get<std::string>() == "${DS_PROMETHEUS}";
    if (ds.is_object())
        return ds.value("type", "prometheus") == "prometheus" ||
               ds.value("uid", "") == "prometheus";
    return false;
}

void collect_panels(const nlohmann::json& panels, std::vector<PanelQuery>& out) {
    if (!panels.is_array())
        return;
    for (const auto& p : panels) {
        if (!p.is_object())
            continue;
        const std::string title = p.value("title", fmt::format("panel {}", p.value("id", 0)));
        const nlohmann::json panel_ds =
            p.contains("datasource") ? p["datasource"] : nlohmann::json();
        if (p.contains("targets") && p["targets"].is_array()) {
            for (const auto& t : p["targets"]) {
                if (!t.is_object() || !t.contains("expr") || !t["expr"].is_string())
                    continue;
                const auto& ds = t.contains("datasource") ? t["datasource"] : panel_ds;
                if (!is_prometheus_datasource(ds))
                    continue;
                const auto expr = t["expr"].get<std::string>();
                if (!expr.empty())
                    out.push_back({title, expr});
            }
        }
        if (p.contains("panels"))
            collect_panels(p["panels"], out); // collapsed rows keep their panels inside
    }
}

} // namespace

CheckResult stack_health(CheckContext& c) {
    struct Probe {
        std::string service, path;
        std::function<std::string(const HttpResponse&)> judge; ///< empty string: healthy
    };
    const auto status_200 = [](const HttpResponse& r) {
        return r.status == 200 ? std::string() : describe(r);
    };
    const std::vector<Probe> all{
        {"collector", "/",
         [](const HttpResponse& r) {
             const auto j = parse_json(r.body);
             if (r.status == 200 && j && j->is_object() &&
                 j->value("status", "") == "Server available")
                 return std::string();
             return describe(r);
         }},
        {"api", "/health", status_200},
        {"nginx", "/", status_200},
        {"grafana", "/api/health",
         [](const HttpResponse& r) {
             const auto j = parse_json(r.body);
             if (r.status == 200 && j && j->is_object() && j->value("database", "") == "ok")
                 return std::string();
             return r.status == 200 ? std::string("database is not \"ok\"") : describe(r);
         }},
        {"prometheus", "/-/ready", status_200},
        {"tempo", "/ready", status_200},
        {"loki", "/ready", status_200},
    };
    std::vector<Probe> probes;
    for (const auto& p : all) {
        const auto& wanted = c.options().services;
        if (std::find(wanted.begin(), wanted.end(), p.service) != wanted.end())
            probes.push_back(p);
    }
    if (probes.empty())
        return c.finish(Status::fail, "no service to probe: verify.services names none of " +
                                          join(endpoint_names(), ", "));
    return c.poll([&]() -> Attempt {
        std::vector<std::string> bad;
        for (const auto& p : probes) {
            const auto r = probe(c, c.endpoint(p.service) + p.path);
            auto why = p.judge(r);
            c.result().evidence.back().note = why.empty() ? p.service + " healthy" : p.service;
            if (!why.empty())
                bad.push_back(fmt::format("{} ({})", p.service, why));
        }
        if (bad.empty())
            return passed(fmt::format("{} services healthy ({})", probes.size(), [&] {
                std::vector<std::string> names;
                for (const auto& p : probes)
                    names.push_back(p.service);
                return join(names, ", ");
            }()));
        return again(fmt::format("not healthy: {}", join(bad)));
    });
}

CheckResult prometheus_targets(CheckContext& c) {
    const auto& jobs = c.options().expected_jobs;
    return c.poll([&]() -> Attempt {
        const auto r = c.get(c.endpoint("prometheus") + "/api/v1/targets?state=active");
        const auto j = parse_json(r.body);
        if (r.status != 200 || !j || !j->contains("data"))
            return again(fmt::format("targets API: {}", describe(r)));
        const auto& targets = (*j)["data"].value("activeTargets", nlohmann::json::array());
        std::vector<std::string> waiting, down, up;
        for (const auto& job : jobs) {
            int n = 0, n_up = 0;
            std::string problem;
            for (const auto& t : targets) {
                const auto labels = t.value("labels", nlohmann::json::object());
                if (labels.value("job", t.value("scrapePool", "")) != job)
                    continue;
                ++n;
                const auto health = t.value("health", "unknown");
                if (health == "up") {
                    ++n_up;
                } else if (health == "unknown") {
                    if (problem.empty())
                        problem = "unknown (not scraped yet)";
                } else {
                    problem = fmt::format("{} {}: {}", t.value("scrapeUrl", "?"), health,
                                          t.value("lastError", ""));
                }
            }
            if (n == 0)
                waiting.push_back(fmt::format("{} (no active target)", job));
            else if (n_up == n)
                up.push_back(job);
            else
                down.push_back(fmt::format("{} ({})", job, problem));
        }
        if (!c.result().evidence.empty())
            c.result().evidence.back().note =
                fmt::format("{} of {} jobs up", up.size(), jobs.size());
        if (waiting.empty() && down.empty())
            return passed(fmt::format("all {} jobs up: {}", jobs.size(), join(up, ", ")));
        std::vector<std::string> all = down;
        all.insert(all.end(), waiting.begin(), waiting.end());
        return again(fmt::format("not up: {}", join(all)));
    });
}

CheckResult prometheus_sli(CheckContext& c) {
    send_traffic(c, 5);
    return c.poll([&]() -> Attempt {
        // The SLI series exist only once Prometheus scraped the API after the traffic.
        const auto present = evaluate(c, "sum(http_requests_total)", "SLI series present");
        if (present.kind == PromAnswer::bad_query)
            return failed(fmt::format("sum(http_requests_total): {}", present.detail));
        if (present.kind != PromAnswer::ok)
            return again(fmt::format("Prometheus query API: {}", present.detail));
        if (present.series == 0)
            return again("no http_requests_total series yet (is the task API scraped?)");
        std::vector<std::string> bad;
        for (const auto& q : sli_queries()) {
            const auto a = evaluate(c, q, "SLI query");
            if (a.kind == PromAnswer::bad_query)
                return failed(fmt::format("'{}' does not evaluate: {}", q, a.detail));
            if (a.kind != PromAnswer::ok)
                bad.push_back(fmt::format("'{}': {}", q, a.detail));
        }
        if (!bad.empty())
            return again(join(bad));
        return passed(fmt::format("{} SLI queries evaluate", sli_queries().size()));
    });
}

CheckResult grafana_provisioned(CheckContext& c) {
    const auto g = c.endpoint("grafana");
    return c.poll([&]() -> Attempt {
        std::vector<std::string> waiting;
        for (const auto& uid : c.options().datasources) {
            const auto r =
                c.get(fmt::format("{}/api/datasources/uid/{}", g, uid), "datasource " + uid);
            if (r.status != 200) {
                waiting.push_back(fmt::format("datasource '{}' missing ({})", uid, describe(r)));
                continue;
            }
            // Judge health by `status` only: the message wording differs between versions.
            const auto h = c.get(fmt::format("{}/api/datasources/uid/{}/health", g, uid),
                                 "datasource " + uid + " health");
            const auto j = parse_json(h.body);
            const std::string status = j && j->is_object() ? j->value("status", "") : "";
            if (status != "OK")
                waiting.push_back(fmt::format(
                    "datasource '{}' health {} ({})", uid, status.empty() ? "?" : status,
                    j && j->is_object() ? j->value("message", describe(h)) : describe(h)));
        }
        std::size_t evaluated = 0;
        for (const auto& uid : c.options().dashboards) {
            const auto r =
                c.get(fmt::format("{}/api/dashboards/uid/{}", g, uid), "dashboard " + uid);
            const auto j = parse_json(r.body);
            if (r.status != 200 || !j || !j->contains("dashboard")) {
                waiting.push_back(fmt::format("dashboard '{}' missing ({})", uid, describe(r)));
                continue;
            }
            const auto meta = j->value("meta", nlohmann::json::object());
            if (!meta.value("provisioned", false)) {
                waiting.push_back(fmt::format("dashboard '{}' is not provisioned", uid));
                continue;
            }
            const auto& dash = (*j)["dashboard"];
            const std::string title = dash.value("title", uid);
            std::vector<PanelQuery> queries;
            collect_panels(dash.value("panels", nlohmann::json::array()), queries);
            for (const auto& q : queries) {
                const auto a = evaluate(c, substitute_grafana_variables(q.expr),
                                        fmt::format("{} / {}", title, q.panel));
                if (a.kind == PromAnswer::bad_query)
                    return failed(fmt::format("dashboard '{}' ({}) panel '{}': '{}' does not "
                                              "evaluate: {}",
                                              title, uid, q.panel, q.expr, a.detail));
                if (a.kind != PromAnswer::ok)
                    waiting.push_back(
                        fmt::format("dashboard '{}' panel '{}': {}", title, q.panel, a.detail));
                else
                    ++evaluated;
            }
        }
        if (!waiting.empty())
            return again(join(waiting));
        return passed(fmt::format("{} datasources OK, {} dashboards provisioned, {} panel "
                                  "queries evaluate",
                                  c.options().datasources.size(), c.options().dashboards.size(),
                                  evaluated));
    });
}

} // namespace labctl::verify::detail
