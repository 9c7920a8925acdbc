// stack.health, prometheus.targets and prometheus.sli: what the services report about
// themselves (grafana.provisioned is in checks_grafana.cpp).

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <functional>

#include "context.hpp"
#include "prom.hpp"

namespace labctl::verify::detail {

namespace {

constexpr std::chrono::milliseconds k_probe_timeout{3000};

HttpResponse probe(CheckContext& c, const std::string& url) {
    HttpRequest req;
    req.url = url;
    req.timeout = k_probe_timeout;
    return c.send(req);
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
             if (r.status != 200 || !j || !member(*j, "status") || !(*j)["status"].is_string())
                 return describe_json(r, j);
             const auto status = string_member(*j, "status");
             return status == "Server available" ? std::string()
                                                 : fmt::format("status is \"{}\"", status);
         }},
        {"api", "/health", status_200},
        {"nginx", "/", status_200},
        {"grafana", "/api/health",
         [](const HttpResponse& r) {
             const auto j = parse_json(r.body);
             if (r.status != 200 || !j || !member(*j, "database") || !(*j)["database"].is_string())
                 return describe_json(r, j);
             const auto database = string_member(*j, "database");
             return database == "ok" ? std::string()
                                     : fmt::format("database is \"{}\", not \"ok\"", database);
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
        return c.finish(Status::fail, fmt::format("no service to probe: verify.services names "
                                                  "none of {}",
                                                  fmt::join(endpoint_names(), ", ")));
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
                return fmt::format("{}", fmt::join(names, ", "));
            }()));
        return again(fmt::format("not healthy: {}", fmt::join(bad, "; ")));
    });
}

namespace {

/// The verdict on Prometheus's active targets (an array): every expected job has targets, all
/// "up". Throws nlohmann::json::exception on entries whose members are not of the documented types.
Attempt judge_targets(CheckContext& c, const nlohmann::json& targets,
                      const std::vector<std::string>& jobs) {
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
        c.result().evidence.back().note = fmt::format("{} of {} jobs up", up.size(), jobs.size());
    if (waiting.empty() && down.empty())
        return passed(fmt::format("all {} jobs up: {}", jobs.size(), fmt::join(up, ", ")));
    std::vector<std::string> all = down;
    all.insert(all.end(), waiting.begin(), waiting.end());
    return again(fmt::format("not up: {}", fmt::join(all, "; ")));
}

} // namespace

CheckResult prometheus_targets(CheckContext& c) {
    const auto& jobs = c.options().expected_jobs;
    return c.poll([&]() -> Attempt {
        const auto r = c.get(c.endpoint("prometheus") + "/api/v1/targets?state=active");
        const auto j = parse_json(r.body);
        const auto* data = j ? member(*j, "data") : nullptr;
        const auto* targets = data ? member(*data, "activeTargets") : nullptr;
        const auto unusable = [&] {
            return again(fmt::format("Prometheus targets API: {}", describe_json(r, j)));
        };
        if (r.status != 200 || !targets || !targets->is_array())
            return unusable();
        try {
            return judge_targets(c, *targets, jobs);
        } catch (const nlohmann::json::exception&) {
            return unusable(); // a target entry with members of other types than documented
        }
    });
}

CheckResult prometheus_sli(CheckContext& c) {
    std::string traffic_error = "not sent yet";
    std::string last_complete; // the last attempt the deadline did not cut short
    return c.poll([&]() -> Attempt {
        // verify's own, successful traffic makes every SLI series exist (STACK.md §5: a counter
        // never incremented has no series). Resent until it all succeeded once.
        if (!traffic_error.empty() && !(traffic_error = send_sli_traffic(c)).empty())
            return again(traffic_error);
        // The SLI series exist only once Prometheus scraped the API after the traffic.
        const auto present = evaluate(c, "sum(http_requests_total)", "SLI series present");
        if (present.kind == PromAnswer::bad_query)
            return failed(fmt::format("sum(http_requests_total): {}", present.detail));
        if (present.kind != PromAnswer::ok)
            return again(fmt::format("Prometheus query API: {}", present.detail));
        if (present.series == 0)
            return again("no http_requests_total series yet (is the task API scraped?)");
        std::vector<std::string> bad, empty;
        for (const auto& q : sli_queries()) {
            const auto a = evaluate(c, q, "SLI query");
            if (a.kind == PromAnswer::bad_query)
                return failed(fmt::format("'{}' does not evaluate: {}", q, a.detail));
            if (a.kind != PromAnswer::ok)
                bad.push_back(fmt::format("'{}': {}", q, a.detail));
            else if (a.series == 0)
                empty.push_back(fmt::format("'{}'", q));
            if (!c.result().evidence.empty())
                c.result().evidence.back().note =
                    fmt::format("SLI query: {} series", a.kind == PromAnswer::ok ? a.series : 0);
        }
        if (c.expired() && !last_complete.empty() && (!bad.empty() || !empty.empty()))
            return again(last_complete); // this attempt was cut short by the deadline
        if (!bad.empty())
            return again(last_complete = fmt::format("{}", fmt::join(bad, "; ")));
        // "Parses" is not "works": after verify's traffic every SLI query must return a series.
        // rate() needs two scrapes after the first request, so keep polling until the deadline.
        if (!empty.empty())
            return again(last_complete = fmt::format(
                             "{} of {} SLI quer{} returned no series after verify's "
                             "traffic: {}",
                             empty.size(), sli_queries().size(),
                             sli_queries().size() == 1 ? "y" : "ies", fmt::join(empty, "; ")));
        return passed(fmt::format("{} SLI queries return data", sli_queries().size()));
    });
}

} // namespace labctl::verify::detail
