// The Tempo and Loki fixtures (fake_stack.hpp), per pin set.

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <regex>

#include "fake_internal.hpp"
#include "fake_stack.hpp"

namespace labctl::test::verify {

using nlohmann::json;
using namespace detail;

// grafana/tempo@v2.3.1 and @v2.10.8:
// - cmd/tempo/app/app.go readyHandler: GET /ready → 200 "ready" (503 "Some services are not
//   Running…" while starting).
// - cmd/tempo/app/modules.go echoHandler: http.Error(w, "echo", 200) → "echo\n", text/plain.
// - pkg/api/http.go: PathTraces "/api/traces/{traceID}" at both tags; PathTracesV2
//   "/api/v2/traces/{traceID}" only at v2.10.8 (2.3.1's router answers Go's "404 page not
//   found\n").
// - v1 body: 2.3.1 marshals tempopb.Trace (field `batches`, pkg/tempopb/tempo.proto); 2.10.8
//   pkg/tempopb/trace_utils.go MarshalToJSONV1 renames `resourceSpans` back to `batches`. v2 body:
//   TraceByIDResponse {"trace":{"resourceSpans":[…]},"metrics":{…}}. gogo jsonpb: ids base64,
//   enums as names ("SPAN_KIND_SERVER").
// - not found: 2.3.1 modules/frontend/tracebyidsharding.go → 404 "trace not found" (text);
//   2.10.8 modules/frontend/combiner/trace_by_id.go keeps 404 (body text not confirmed; the same
//   text is used here).
// - /api/search: {"traces":[{"traceID":<hex without leading zeros>,"rootServiceName":…}],
//   "metrics":{…}}.
Reply FakeStack::tempo(const Request& r) {
    const bool current = m_quirks.pins == PinSet::current;
    if (r.path == "/ready")
        return {200, "ready\n", "text/plain; charset=utf-8"};
    if (r.path == "/api/echo")
        return {200, "echo\n", "text/plain; charset=utf-8"};
    if (r.path == "/api/search") {
        json traces = json::array();
        std::lock_guard lock(m_mutex);
        const auto entry = [](const std::string& t) {
            return json{{"traceID", strip_zeros(t)},
                        {"rootServiceName", "task-api"},
                        {"rootTraceName", "GET /api/tasks"},
                        {"startTimeUnixNano", std::to_string(now_ns())},
                        {"durationMs", 3}};
        };
        for (const auto& [t, p] : m_trace_parent)
            traces.push_back(entry(t));
        for (const auto& [t, spans] : m_ingested)
            traces.push_back(entry(t));
        return {200, json{{"traces", traces}, {"metrics", {{"inspectedBlocks", 1}}}}.dump()};
    }
    static const std::regex k_trace("/api/(v2/)?traces/([0-9a-f]{32})");
    std::smatch m;
    if (!std::regex_match(r.path, m, k_trace) || (m[1].matched && !current))
        return {404, "404 page not found\n", "text/plain; charset=utf-8"};
    const bool v2 = m[1].matched;
    ++m_tempo_polls;
    const std::string id = m[2];
    const auto wrap = [v2](const json& rs) {
        if (v2)
            return json{{"trace", {{"resourceSpans", rs}}},
                        {"metrics", {{"inspectedBytes", "1024"}}}}
                .dump();
        return json{{"batches", rs}}.dump();
    };
    std::string parent, name;
    {
        std::lock_guard lock(m_mutex);
        const int asked = ++m_asked[id];
        if (const auto in = m_ingested.find(id); in != m_ingested.end()) {
            // Real spans decoded from the task API's OTLP export.
            json rs = json::array();
            for (const auto& one : in->second)
                rs.push_back(json::parse(one));
            return {200, wrap(rs)};
        }
        const auto it = m_trace_parent.find(id);
        if (it == m_trace_parent.end() || asked <= m_quirks.tempo_polls_before_found)
            return {404, "trace not found", "text/plain; charset=utf-8"};
        parent = it->second;
        name = m_trace_route[id];
    }
    const std::string route = name.substr(name.find(' ') + 1);
    const std::string server_id = "00f067aa0ba902b7";
    const std::string db_id = "53995c3f42cd8ad8";
    const json spans = json::array(
        {{{"traceId", b64(id)},
          {"spanId", b64(server_id)},
          {"parentSpanId", b64(parent)},
          {"name", name},
          {"kind", "SPAN_KIND_SERVER"},
          {"attributes",
           json::array({attr("http.route", route),
                        attr("http.request.method", name.substr(0, name.find(' ')))})}},
         {{"traceId", b64(id)},
          {"spanId", b64(db_id)},
          {"parentSpanId", b64(server_id)},
          {"name", "SELECT tasks"},
          {"kind", "SPAN_KIND_CLIENT"},
          {"attributes",
           json::array({attr("db.system.name", "sqlite"), attr("db.operation.name", "SELECT")})}}});
    const json rs = json::array(
        {{{"resource", {{"attributes", json::array({attr("service.name", "task-api")})}}},
          {"scopeSpans", json::array({{{"scope", {{"name", "task-api"}}}, {"spans", spans}}})}}});
    return {200, wrap(rs)};
}

// grafana/loki@v2.9.3 and @v3.7.6:
// - pkg/loki/loki.go: GET /ready → 200 "ready".
// - push: 204 No Content.
// - query_range errors: pkg/util/server/error.go WriteError → 400 text/plain, e.g. "parse error at
//   line 1, col 1: syntax error: unexpected IDENTIFIER".
// - 2.9.3 + collector-contrib 0.96.0 loki exporter (pkg/translator/loki): stream labels
//   {exporter="OTLP", job=<service>, level=…}, the record as a JSON line with body, traceid,
//   spanid, severity, resources. (Exporter source not re-read at the tag in this session.)
// - 3.7.6 native OTLP (pkg/loghttp/push/otlp.go, otlp_config.go): resource attribute service.name
//   becomes the index label service_name; the record's trace and span ids the structured metadata
//   trace_id / span_id (lowercase hex); the line is the record's body. pkg/util/marshal/query.go
//   encodeStream: without flags the structured metadata is merged into "stream"; with
//   X-Loki-Response-Encoding-Flags: categorize-labels the stream keeps the index labels and each
//   value gets a third element {"structuredMetadata":{…}} (and data.encodingFlags lists the flag).
Reply FakeStack::loki(const Request& r) {
    const bool v3 = m_quirks.pins == PinSet::current;
    if (r.path == "/ready")
        return {200, "ready\n", "text/plain; charset=utf-8"};
    if (r.path == "/loki/api/v1/push" && r.method == "POST") {
        const auto j = json::parse(r.body);
        std::lock_guard lock(m_mutex);
        m_log_lines.emplace_back(j.at("trace_id").get<std::string>(),
                                 j.at("message").get<std::string>());
        return {204, ""};
    }
    if (r.path != "/loki/api/v1/query_range")
        return {404, "404 page not found\n", "text/plain; charset=utf-8"};
    const auto query = r.param("query");
    if (query.find('{') == std::string::npos || query.find('}') == std::string::npos)
        return {400, "parse error at line 1, col 1: syntax error: unexpected IDENTIFIER",
                "text/plain; charset=utf-8"};
    static const std::regex k_id("[0-9a-f]{32}");
    std::smatch m;
    const std::string id = std::regex_search(query, m, k_id) ? m[0].str() : std::string();
    const auto flags = r.headers.find("x-loki-response-encoding-flags");
    const bool categorize = v3 && !m_quirks.loki_ignores_encoding_flags &&
                            flags != r.headers.end() &&
                            flags->second.find("categorize-labels") != std::string::npos;
    json data{{"resultType", "streams"}, {"result", json::array()}};
    if (categorize)
        data["encodingFlags"] = json::array({"categorize-labels"});
    auto& result = data["result"];
    const bool v3_query = query.find(R"(service_name="task-api")") != std::string::npos;
    const bool v29_query = query.find(R"(exporter="OTLP")") != std::string::npos;
    std::lock_guard lock(m_mutex);
    const bool own_flavour = v3 ? v3_query : v29_query;
    if (own_flavour && !id.empty() && ++m_loki_asked[id] <= m_quirks.loki_polls_before_found)
        return {200, json{{"status", "success"}, {"data", data}}.dump()};
    for (const auto& [trace, message] : m_log_lines) {
        if (!id.empty() && trace != id)
            continue;
        const std::string ts = std::to_string(now_ns());
        if (v3 && v3_query) {
            // Default index labels: service.name and deployment.environment are in
            // GlobalOTLPConfig's default_resource_attributes_as_index_labels.
            const json index{{"deployment_environment", "lab"}, {"service_name", "task-api"}};
            const json metadata{{"trace_id", trace}, {"span_id", "00f067aa0ba902b7"}};
            if (categorize) {
                result.push_back(
                    {{"stream", index},
                     {"values", json::array({json::array(
                                    {ts, message, {{"structuredMetadata", metadata}}})})}});
            } else {
                json merged = index;
                merged.update(metadata);
                result.push_back(
                    {{"stream", merged}, {"values", json::array({json::array({ts, message})})}});
            }
        } else if (!v3 && v29_query) {
            const json line{{"body", message},
                            {"traceid", trace},
                            {"spanid", "00f067aa0ba902b7"},
                            {"severity", "INFO"},
                            {"resources", {{"service.name", "task-api"}}}};
            result.push_back({{"stream",
                               {{"deployment_environment", "lab"},
                                {"exporter", "OTLP"},
                                {"job", "task-api"},
                                {"level", "INFO"},
                                {"service_name", "task-api"}}},
                              {"values", json::array({json::array({ts, line.dump()})})}});
        }
    }
    return {200, json{{"status", "success"}, {"data", data}}.dump()};
}

} // namespace labctl::test::verify
