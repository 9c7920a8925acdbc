#include <fmt/format.h>

#include <labctl/core/parallel.hpp>
#include <labctl/verify/verify.hpp>

#include "context.hpp"

namespace labctl::verify {

const std::vector<std::string>& endpoint_names() {
    static const std::vector<std::string> k_names{"nginx", "api",  "grafana",  "prometheus",
                                                  "tempo", "loki", "collector"};
    return k_names;
}

std::map<std::string, std::string> default_endpoints(const std::string& host) {
    const std::string h =
        host.find(':') != std::string::npos && host.front() != '[' ? "[" + host + "]" : host;
    return {
        {"nginx", fmt::format("http://{}:8080", h)},
        {"api", fmt::format("http://{}:5000", h)},
        {"grafana", fmt::format("http://{}:3000", h)},
        {"prometheus", fmt::format("http://{}:9090", h)},
        {"tempo", fmt::format("http://{}:3200", h)},
        {"loki", fmt::format("http://{}:3100", h)},
        {"collector", fmt::format("http://{}:13133", h)},
    };
}

std::chrono::milliseconds deadline_for(const Options& options, const std::string& check) {
    const auto it = options.deadlines.find(check);
    return it != options.deadlines.end() ? it->second : options.deadline;
}

const std::vector<std::string>& sli_queries() {
    // Exactly the PromQL of stacks/lab/grafana/dashboards/sli-slo-dashboard.json, in panel order
    // (a contract test compares them). Every one returns a series from the first request on:
    // only 5xx count as errors, and `or vector(0)` / `or 0 * …` stand in for the 5xx series that
    // does not exist before the first server error.
    static const std::vector<std::string> k_queries{
        R"(100 * (1 - ((sum(rate(http_requests_total{status_code=~"5.."}[5m])) or vector(0)) / sum(rate(http_requests_total[5m])))))",
        "histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket[5m])) by (le))",
        R"(100 * (1 - (((sum(increase(http_requests_total{status_code=~"5.."}[30d])) or vector(0)) / sum(increase(http_requests_total[30d]))) / (1 - 0.99))))",
        "sum(rate(http_requests_total[5m]))",
        "sum(rate(http_requests_total[5m])) by (endpoint)",
        R"(100 * (sum by (endpoint) (rate(http_requests_total{status_code=~"5.."}[5m])) or 0 * sum by (endpoint) (rate(http_requests_total[5m]))) / sum by (endpoint) (rate(http_requests_total[5m])))",
        "histogram_quantile(0.50, sum(rate(http_request_duration_seconds_bucket[5m])) by (le, "
        "endpoint))",
        "histogram_quantile(0.95, sum(rate(http_request_duration_seconds_bucket[5m])) by (le, "
        "endpoint))",
        "histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket[5m])) by (le, "
        "endpoint))",
        "histogram_quantile(0.95, sum(rate(db_query_duration_seconds_bucket[5m])) by (le, "
        "operation))",
        "sum(rate(http_requests_total[5m])) by (status_code)",
    };
    return k_queries;
}

CheckResult run_check(const Options& options, const std::string& name) {
    detail::CheckContext c(options, name);
    if (options.on_start)
        options.on_start(name);
    CheckResult r;
    try {
        if (name == "stack.health")
            r = detail::stack_health(c);
        else if (name == "prometheus.targets")
            r = detail::prometheus_targets(c);
        else if (name == "prometheus.sli")
            r = detail::prometheus_sli(c);
        else if (name == "trace.e2e")
            r = detail::trace_e2e(c);
        else if (name == "logs.correlated")
            r = detail::logs_correlated(c);
        else if (name == "grafana.provisioned")
            r = detail::grafana_provisioned(c);
        else if (name == "nginx.resilience")
            r = detail::nginx_resilience(c);
        else if (name == "ssh.hardened")
            r = detail::ssh_hardened(c);
        else if (name == "host.hardened")
            r = detail::host_hardened(c);
        else
            r = c.finish(Status::fail, fmt::format("unknown check '{}'", name));
    } catch (const std::exception& e) {
        // A bug or an unexpected library error in one check is still only that check's result.
        r = c.finish(Status::fail, fmt::format("check aborted: {}", e.what()));
    }
    if (options.on_result)
        options.on_result(r);
    return r;
}

std::vector<CheckResult> run_checks(const Options& options) {
    std::vector<CheckResult> results(options.checks.size());
    // A check that disturbs the stack (nginx.resilience restarts the backend) runs alone, after
    // the others, so their verdicts never see its 502 window.
    std::vector<std::size_t> passive, disruptive;
    for (std::size_t i = 0; i < options.checks.size(); ++i)
        (options.checks[i] == "nginx.resilience" ? disruptive : passive).push_back(i);
    parallel_for(passive.size(), options.parallel, [&](std::size_t k) {
        results[passive[k]] = run_check(options, options.checks[passive[k]]);
    });
    for (const auto i : disruptive)
        results[i] = run_check(options, options.checks[i]);
    return results;
}

} // namespace labctl::verify
