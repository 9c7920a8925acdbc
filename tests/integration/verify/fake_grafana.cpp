// The Grafana fixture (fake_stack.hpp), per pin set, after grafana/grafana@00012cef:pkg/api/api.go
// and pkg/api/datasources.go (main, ~12.2.0-pre) and an untagged 10.x copy of them (the exact
// v10.2.3 / v12.3.1 tags could not be read here: docs/UPSTREAM.md). Dashboards are the lab's real
// provisioned JSON files (stacks/lab/grafana/dashboards), read at every request.

#include <fmt/format.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>

#include <labctl/core/encoding.hpp>
#include <labctl/verify/http.hpp>

#include "fake_internal.hpp"
#include "fake_stack.hpp"

#ifndef LABCTL_VERIFY_DASHBOARD_DIR
#error "LABCTL_VERIFY_DASHBOARD_DIR (stacks/lab/grafana/dashboards) must be defined"
#endif

namespace labctl::test::verify {

using nlohmann::json;

namespace {

enum class Role { anonymous_viewer, admin, bad_credentials };

Role role_of(const Request& r, const Quirks& q) {
    const auto it = r.headers.find("authorization");
    if (it == r.headers.end())
        return Role::anonymous_viewer; // [auth.anonymous] enabled, org_role = Viewer (STACK.md §4)
    const std::string& v = it->second;
    if (v.rfind("Basic ", 0) != 0)
        return Role::bad_credentials;
    const auto decoded = labctl::base64_decode(v.substr(6));
    return decoded && *decoded == q.grafana_admin_user + ":" + q.grafana_admin_password
               ? Role::admin
               : Role::bad_credentials;
}

// grafana/grafana pkg/services/accesscontrol/middleware.go deny(): 403 for API requests.
Reply access_denied(const std::string& permission) {
    return {403, json{{"title", "Access denied"},
                      {"message", "You'll need additional permissions to perform this action. "
                                  "Permissions needed: " +
                                      permission},
                      {"accessErrorId", "ACE0123456789"}}
                     .dump()};
}

std::optional<json> load_dashboard(const std::string& uid) {
    if (!std::regex_match(uid, std::regex("[a-z0-9-]+")))
        return std::nullopt;
    std::ifstream in(std::string(LABCTL_VERIFY_DASHBOARD_DIR) + "/" + uid + ".json");
    if (!in)
        return std::nullopt;
    std::stringstream ss;
    ss << in.rdbuf();
    auto j = json::parse(ss.str(), nullptr, false);
    if (j.is_discarded() || j.value("uid", "") != uid)
        return std::nullopt;
    return j;
}

} // namespace

Reply FakeStack::grafana(const Request& r) {
    Reply reply = grafana_route(r);
    std::lock_guard lock(m_mutex);
    m_grafana_log.push_back(fmt::format("{} {} {}", r.method, r.path, reply.status));
    if (r.headers.count("authorization"))
        ++m_grafana_auth;
    return reply;
}

// Routes: grafana/grafana pkg/api/api.go (10.x: authorize(reqSignedIn, …) form; main@00012cef,
// 12.2.0-pre: authorize(…) form; the permissions are the same):
//   GET /api/health                          no auth       (pkg/api/health.go or http_server.go)
//   GET /api/datasources/uid/:uid            datasources:read (fixed:datasources:reader → Admin)
//   ANY /api/datasources/uid/:uid/health     datasources:query
//   ANY /api/datasources/proxy/uid/:uid/*    datasources:query
//   GET /api/dashboards/uid/:uid             dashboards:read (Viewer: via folder permissions)
//   GET /api/search                          signed in (anonymous counts)
// pkg/api/plugins.go translatePluginRequestErrorToAPIError: a plugin without CheckHealth
// (pkg/tsdb/tempo: QueryData and streams only) → 10.2: 404 {"message":"Not found"}; with errutil
// (ErrMethodNotImplemented = errutil.NotImplemented("plugin.notImplemented")) → 501.
Reply FakeStack::grafana_route(const Request& r) {
    const bool current = m_quirks.pins == PinSet::current;
    const auto& v = pin_versions(m_quirks.pins);
    if (r.path == "/api/health")
        return {200, json{{"commit", current ? "4d3b7c3ae0" : "1e84fede54"},
                          {"database", "ok"},
                          {"version", v.grafana}}
                         .dump()};
    const Role role = role_of(r, m_quirks);
    if (role == Role::bad_credentials)
        return {401, R"({"message":"Invalid username or password"})"};
    static const std::map<std::string, std::pair<std::string, std::string>> k_ds{
        {"prometheus", {"prometheus", "http://prometheus:9090"}},
        {"tempo", {"tempo", "http://tempo:3200"}},
        {"loki", {"loki", "http://loki:3100"}},
    };
    static const std::regex k_ds_path("/api/datasources/uid/([a-zA-Z0-9_-]+)(/health)?");
    static const std::regex k_proxy("/api/datasources/proxy/uid/([a-zA-Z0-9_-]+)(/.*)?");
    std::smatch m;
    if (std::regex_match(r.path, m, k_ds_path)) {
        const std::string uid = m[1];
        const auto ds = k_ds.find(uid);
        if (!m[2].matched) {
            if (role != Role::admin)
                return access_denied("datasources:read");
            if (ds == k_ds.end())
                return {404, R"({"message":"Data source not found"})"};
            return {200, json{{"id", 1 + std::distance(k_ds.begin(), ds)},
                              {"uid", uid},
                              {"orgId", 1},
                              {"name", uid},
                              {"type", ds->second.first},
                              {"access", "proxy"},
                              {"url", ds->second.second},
                              {"isDefault", uid == "prometheus"},
                              {"readOnly", true}}
                             .dump()};
        }
        if (ds == k_ds.end())
            return {404, R"({"message":"Data source not found"})"};
        if (uid == m_quirks.grafana_health_error_uid)
            return {400, json{{"status", "ERROR"},
                              {"message", "Post \"" + ds->second.second +
                                              "/api/v1/query\": dial tcp: connection refused"}}
                             .dump()};
        if (ds->second.first == "tempo") {
            if (!current)
                return {404, R"({"message":"Not found"})"};
            return {
                501,
                R"({"message":"Not implemented","messageId":"plugin.notImplemented","statusCode":501,"traceID":""})"};
        }
        if (ds->second.first == "prometheus")
            return {200, R"({"message":"Successfully queried the Prometheus API.","status":"OK"})"};
        return {200, R"({"message":"Data source successfully connected.","status":"OK"})"};
    }
    if (std::regex_match(r.path, m, k_proxy)) {
        const std::string uid = m[1];
        if (k_ds.find(uid) == k_ds.end())
            return {404, R"({"message":"Unable to find datasource"})"};
        // pkg/api/pluginproxy/ds_proxy.go: the request goes to the datasource's URL; here, the
        // fake Tempo really answers (only Tempo is proxied by verify).
        if (uid != "tempo" || m_quirks.grafana_proxy_fails)
            return {502, "", "text/plain"};
        labctl::verify::HttpRequest fwd;
        fwd.method = r.method;
        fwd.url = m_tempo->url() + (m[2].matched ? m[2].str() : std::string("/"));
        fwd.timeout = std::chrono::seconds(3);
        const auto answer = labctl::verify::http_request(fwd);
        if (answer.status == 0)
            return {502, "", "text/plain"};
        const auto ct = answer.headers.find("content-type");
        return {answer.status, answer.body,
                ct != answer.headers.end() ? ct->second : std::string("text/plain")};
    }
    static const std::regex k_dash("/api/dashboards/uid/([a-zA-Z0-9_-]+)");
    if (std::regex_match(r.path, m, k_dash)) {
        auto dash = load_dashboard(m[1]);
        if (!dash)
            return {404, R"({"message":"Dashboard not found"})"};
        (*dash)["id"] = 1;
        (*dash)["version"] = 1;
        if (m_quirks.broken_panel && dash->value("uid", "") == "sli-slo-dashboard")
            (*dash)["panels"].push_back(
                {{"id", 99},
                 {"title", "Error budget"},
                 {"datasource", {{"type", "prometheus"}, {"uid", "prometheus"}}},
                 {"targets", json::array({{{"expr", "sum(rate(http_errors_total[30d])"}}})}});
        const std::string uid = m[1];
        json meta{{"type", "db"},
                  {"canSave", role == Role::admin},
                  {"canEdit", role == Role::admin},
                  {"canAdmin", role == Role::admin},
                  {"canStar", role == Role::admin},
                  {"canDelete", role == Role::admin},
                  {"slug", uid},
                  {"url", "/d/" + uid + "/" + uid},
                  {"provisioned", true},
                  {"provisionedExternalId", uid + ".json"},
                  {"folderId", 0},
                  {"folderUid", ""},
                  {"folderTitle", "General"}};
        return {200, json{{"dashboard", *dash}, {"meta", meta}}.dump()};
    }
    if (r.path == "/api/search") {
        json hits = json::array();
        int id = 1;
        for (const char* uid : {"end-to-end-tracing", "sli-slo-dashboard"})
            if (const auto d = load_dashboard(uid))
                hits.push_back({{"id", id++},
                                {"uid", uid},
                                {"title", d->value("title", uid)},
                                {"uri", std::string("db/") + uid},
                                {"url", std::string("/d/") + uid + "/" + uid},
                                {"type", "dash-db"},
                                {"tags", json::array()},
                                {"isStarred", false}});
        return {200, hits.dump()};
    }
    return {404, R"({"message":"Not found"})"};
}

} // namespace labctl::test::verify
