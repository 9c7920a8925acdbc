// grafana.provisioned: the datasources exist and answer, the dashboards are provisioned, and every
// Prometheus panel query of each dashboard returns data after verify's own traffic.
//
// Upstream facts (docs/UPSTREAM.md):
// - grafana/grafana (10.x and main) pkg/api/api.go: GET /api/datasources/uid/:uid needs
//   `datasources:read` (fixed:datasources:reader, granted to Admin only: an anonymous Viewer gets
//   403 {"title":"Access denied","message":"You'll need additional permissions ...",
//   "accessErrorId":…}); /api/datasources/uid/:uid/health and /api/datasources/proxy/uid/:uid/*
//   need `datasources:query` (Viewers query the lab's datasources).
// - The health route answers from the plugin's backend CheckHealth. A plugin without one (Tempo:
//   pkg/tsdb/tempo has no CheckHealth) gives ErrMethodNotImplemented: 404 {"message":"Not found"}
//   in 10.2 (pkg/api/plugins.go translatePluginRequestErrorToAPIError), 501
//   {"message":"Not implemented","messageId":"plugin.notImplemented",…} where errutil took over.
//   Grafana's own Tempo test then asks Tempo's /api/echo through the datasource proxy: verify does
//   the same, GET /api/datasources/proxy/uid/<uid>/api/echo → 200 "echo" (Tempo writes "echo\n").

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <labctl/core/encoding.hpp>

#include "context.hpp"
#include "prom.hpp"

namespace labctl::verify::detail {

namespace {

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

/// A GET to Grafana, with basic auth when verify has credentials (never recorded: evidence holds
/// the URL, status and body only).
HttpResponse grafana_get(CheckContext& c, const std::string& path, const std::string& note) {
    HttpRequest req;
    req.url = c.endpoint("grafana") + path;
    req.timeout = std::chrono::milliseconds(10'000);
    const auto& o = c.options();
    if (!o.grafana_user.empty())
        req.headers["Authorization"] =
            "Basic " + base64_encode(o.grafana_user + ":" + o.grafana_password);
    return c.send(req, note);
}

std::string message_of(const HttpResponse& r) {
    const auto j = parse_json(r.body);
    if (const auto message = j ? string_member(*j, "message") : std::string(); !message.empty())
        return fmt::format("HTTP {}: {}", r.status, message);
    return describe(r);
}

/// Empty when the datasource answers; else why not. `how` says which path proved it.
std::string datasource_answers(CheckContext& c, const std::string& uid, const std::string& type,
                               std::string& how) {
    const auto h = grafana_get(c, fmt::format("/api/datasources/uid/{}/health", uid),
                               "datasource " + uid + " health");
    const auto j = parse_json(h.body);
    const std::string status = j ? string_member(*j, "status") : std::string();
    // Judge health by `status` only: the message wording differs between versions.
    if (h.status == 200 && status == "OK") {
        how = "backend health check";
        c.result().evidence.back().note = "datasource " + uid + " health OK (backend check)";
        return {};
    }
    if (h.status == 403)
        return fmt::format("datasource '{}' health forbidden ({}): verify's Grafana user needs "
                           "datasources:query",
                           uid, message_of(h));
    const bool no_backend_check = h.status == 404 || h.status == 501;
    if (!no_backend_check || (type != "tempo" && !(type.empty() && uid == "tempo"))) {
        // Grafana's health answer: {"status":"OK"|"ERROR","message":"…"}.
        if (status.empty())
            return fmt::format("datasource '{}' health: Grafana {}", uid, describe_json(h, j));
        const auto message = string_member(*j, "message");
        return fmt::format("datasource '{}' health {} ({})", uid, status,
                           message.empty() ? describe(h) : message);
    }
    // No backend CheckHealth for Tempo: prove it the way Grafana's own test does.
    c.result().evidence.back().note =
        fmt::format("datasource {} has no backend health check ({})", uid, message_of(h));
    const auto p = grafana_get(c, fmt::format("/api/datasources/proxy/uid/{}/api/echo", uid),
                               "datasource " + uid + " through the datasource proxy");
    // Tempo answers http.Error(w, "echo", 200): "echo\n".
    if (p.status == 200 && (p.body == "echo\n" || p.body == "echo")) {
        how = "datasource proxy /api/echo";
        c.result().evidence.back().note =
            fmt::format("datasource {} OK through the datasource proxy (/api/echo → echo)", uid);
        return {};
    }
    return fmt::format("datasource '{}' has no backend health check ({}) and the datasource proxy "
                       "/api/datasources/proxy/uid/{}/api/echo failed ({})",
                       uid, message_of(h), uid, describe(p));
}

} // namespace

CheckResult grafana_provisioned(CheckContext& c) {
    std::string traffic_error = "not sent yet";
    std::string last_complete; // the last attempt the deadline did not cut short
    return c.poll([&]() -> Attempt {
        std::vector<std::string> waiting, empty, paths;
        for (const auto& uid : c.options().datasources) {
            const auto r =
                grafana_get(c, fmt::format("/api/datasources/uid/{}", uid), "datasource " + uid);
            std::string type;
            if (r.status == 200) {
                const auto j = parse_json(r.body);
                if (!j || !j->is_object()) {
                    waiting.push_back(
                        fmt::format("datasource '{}': Grafana {}", uid, describe_json(r, j)));
                    continue;
                }
                type = string_member(*j, "type");
            } else if (r.status == 403) {
                // An anonymous Viewer may not read datasource settings (datasources:read is
                // Admin's); the health check or the proxy below still proves the datasource.
                c.result().evidence.back().note =
                    fmt::format("datasource {}: settings not readable by verify's Grafana user "
                                "(403); judged by health/proxy",
                                uid);
            } else {
                waiting.push_back(fmt::format("datasource '{}' missing ({})", uid, describe(r)));
                continue;
            }
            std::string how;
            if (auto why = datasource_answers(c, uid, type, how); !why.empty())
                waiting.push_back(why);
            else
                paths.push_back(fmt::format("{} ({})", uid, how));
        }
        if (!traffic_error.empty() && !(traffic_error = send_sli_traffic(c)).empty())
            waiting.push_back(traffic_error);
        std::size_t with_data = 0;
        for (const auto& uid : c.options().dashboards) {
            const auto r =
                grafana_get(c, fmt::format("/api/dashboards/uid/{}", uid), "dashboard " + uid);
            const auto j = parse_json(r.body);
            if (r.status != 200) {
                waiting.push_back(fmt::format("dashboard '{}' missing ({})", uid, describe(r)));
                continue;
            }
            // Grafana's answer: {"dashboard":{…},"meta":{"provisioned":true,…}}.
            const auto* dash = j ? member(*j, "dashboard") : nullptr;
            const auto* meta = j ? member(*j, "meta") : nullptr;
            std::string title = uid;
            std::vector<PanelQuery> queries;
            bool readable = dash && dash->is_object() && (!meta || meta->is_object());
            try {
                if (readable) {
                    if (!meta || !meta->value("provisioned", false)) {
                        waiting.push_back(fmt::format("dashboard '{}' is not provisioned", uid));
                        continue;
                    }
                    title = dash->value("title", uid);
                    collect_panels(dash->value("panels", nlohmann::json::array()), queries);
                }
            } catch (const nlohmann::json::exception&) {
                readable = false; // members of other types than documented
            }
            if (!readable) {
                waiting.push_back(
                    fmt::format("dashboard '{}': Grafana {}", uid, describe_json(r, j)));
                continue;
            }
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
                else if (a.series == 0)
                    empty.push_back(fmt::format("dashboard '{}' ({}) panel '{}': '{}'", title, uid,
                                                q.panel, q.expr));
                else
                    ++with_data;
            }
        }
        if (!empty.empty())
            waiting.push_back(fmt::format("{} panel quer{} returned no series after verify's "
                                          "traffic: {}",
                                          empty.size(), empty.size() == 1 ? "y" : "ies",
                                          fmt::join(empty, "; ")));
        if (!waiting.empty()) {
            // An attempt the deadline cut short reports "deadline reached before the request":
            // the previous, complete attempt says more (every empty panel by name).
            if (c.expired() && !last_complete.empty())
                return again(last_complete);
            return again(last_complete = fmt::format("{}", fmt::join(waiting, "; ")));
        }
        return passed(fmt::format("{} datasources OK: {}; {} dashboards provisioned, {} panel "
                                  "queries return data",
                                  c.options().datasources.size(), fmt::join(paths, ", "),
                                  c.options().dashboards.size(), with_data));
    });
}

} // namespace labctl::verify::detail
