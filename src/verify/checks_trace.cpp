// trace.e2e and logs.correlated: active round trips. labctl sends a request through nginx with a
// traceparent it chose and reads the same trace id back from Tempo and Loki.

#include <fmt/format.h>

#include <chrono>

#include <labctl/verify/trace_id.hpp>

#include "context.hpp"

namespace labctl::verify::detail {

namespace {

// trace.e2e uses the DB smoke route: it always runs SQL (reads, nothing is changed), while
// GET /api/tasks may be answered from the API's cache without a DB span.
const std::string k_trace_method = "POST";
const std::string k_trace_route = "/api/smoke/db";
const std::string k_trace_target = "/api/smoke/db?ops=1&type=read";
// logs.correlated only needs a request that logs.
const std::string k_log_target = "/api/tasks";

struct Span {
    std::string trace_id, span_id, parent_id, kind, name, service;
    std::map<std::string, std::string> attributes;
};

std::string attribute_value(const nlohmann::json& v) {
    if (!v.is_object())
        return {};
    for (const auto& [k, x] : v.items()) {
        if (x.is_string())
            return x.get<std::string>();
        if (x.is_number() || x.is_boolean())
            return x.dump();
        (void)k;
    }
    return {};
}

std::map<std::string, std::string> attributes(const nlohmann::json& list) {
    std::map<std::string, std::string> out;
    if (!list.is_array())
        return out;
    for (const auto& a : list)
        if (a.is_object() && a.contains("key") && a["key"].is_string())
            out[a["key"].get<std::string>()] = attribute_value(a.value("value", nlohmann::json()));
    return out;
}

std::string span_kind(const nlohmann::json& k) {
    if (k.is_string()) {
        std::string s = k.get<std::string>();
        if (s.rfind("SPAN_KIND_", 0) == 0)
            s = s.substr(10);
        return s;
    }
    if (k.is_number_integer()) {
        static const char* k_kinds[] = {"UNSPECIFIED", "INTERNAL", "SERVER",
                                        "CLIENT",      "PRODUCER", "CONSUMER"};
        const auto i = k.get<int>();
        return i >= 0 && i < 6 ? k_kinds[i] : "UNSPECIFIED";
    }
    return "UNSPECIFIED";
}

/// Spans of a Tempo trace: v1 `{"batches":[…]}` or v2 `{"trace":{"resourceSpans":[…]}}`;
/// ids normalised from base64 (or hex) to lowercase hex. nullopt when the answer has neither
/// shape; throws nlohmann::json::exception on span members of other types than documented.
std::optional<std::vector<Span>> tempo_spans(const nlohmann::json& j) {
    const nlohmann::json* resource_spans = member(j, "batches");
    std::vector<Span> out;
    if (!resource_spans) {
        if (const auto* trace = member(j, "trace"); trace && trace->is_object()) {
            resource_spans = member(*trace, "resourceSpans");
            if (!resource_spans)
                return out; // protobuf's JSON leaves out an empty list
        } else {
            resource_spans = member(j, "resourceSpans");
        }
    }
    if (!resource_spans || !resource_spans->is_array())
        return std::nullopt;
    for (const auto& rs : *resource_spans) {
        if (!rs.is_object())
            continue;
        const auto res = attributes(
            rs.value("resource", nlohmann::json::object()).value("attributes", nlohmann::json()));
        const auto svc = res.count("service.name") ? res.at("service.name") : std::string();
        for (const char* scope_key : {"scopeSpans", "instrumentationLibrarySpans"}) {
            if (!rs.contains(scope_key) || !rs[scope_key].is_array())
                continue;
            for (const auto& ss : rs[scope_key]) {
                if (!ss.is_object() || !ss.contains("spans") || !ss["spans"].is_array())
                    continue;
                for (const auto& sp : ss["spans"]) {
                    Span s;
                    s.trace_id = normalize_trace_id(sp.value("traceId", "")).value_or("");
                    s.span_id = normalize_span_id(sp.value("spanId", "")).value_or("");
                    s.parent_id = normalize_span_id(sp.value("parentSpanId", "")).value_or("");
                    s.kind = span_kind(sp.value("kind", nlohmann::json()));
                    s.name = sp.value("name", "");
                    s.service = svc;
                    s.attributes = attributes(sp.value("attributes", nlohmann::json()));
                    out.push_back(std::move(s));
                }
            }
        }
    }
    return out;
}

/// Sends `method` <nginx><target> with the traceparent; empty string when answered 200.
std::string send_traced_request(CheckContext& c, const std::string& method,
                                const std::string& target, const std::string& trace_id,
                                const std::string& span_id) {
    HttpRequest req;
    req.method = method;
    req.url = c.endpoint("nginx") + target;
    req.headers["traceparent"] = traceparent(trace_id, span_id);
    const auto r = c.send(req, "traced request, traceparent " + traceparent(trace_id, span_id));
    return r.status == 200 ? std::string() : fmt::format("request through nginx: {}", describe(r));
}

long long unix_ns(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

bool line_has_trace(const std::string& line, const std::string& trace_id) {
    if (const auto j = parse_json(line); j && j->is_object()) {
        for (const char* key : {"traceid", "trace_id", "traceId"})
            if (j->contains(key) && (*j)[key].is_string() &&
                normalize_trace_id((*j)[key].get<std::string>()) == trace_id)
                return true;
    }
    return false;
}

bool labels_have_trace(const nlohmann::json& labels, const std::string& trace_id) {
    if (!labels.is_object())
        return false;
    for (const char* key : {"trace_id", "traceid", "traceID"})
        if (labels.contains(key) && labels[key].is_string() &&
            normalize_trace_id(labels[key].get<std::string>()) == trace_id)
            return true;
    return false;
}

/// Counts the log lines of Loki's query_range `result` (an array of streams), and those that
/// carry `trace_id`. Throws nlohmann::json::exception on members of other types than documented.
void count_lines(const nlohmann::json& result, const std::string& trace_id, int& lines,
                 int& matching) {
    for (const auto& stream : result) {
        const auto labels = stream.value("stream", nlohmann::json::object());
        for (const auto& v : stream.value("values", nlohmann::json::array())) {
            if (!v.is_array() || v.size() < 2 || !v[1].is_string())
                continue;
            ++lines;
            const bool meta =
                v.size() > 2 && v[2].is_object() &&
                labels_have_trace(v[2].value("structuredMetadata", nlohmann::json::object()),
                                  trace_id);
            if (meta || labels_have_trace(labels, trace_id) ||
                line_has_trace(v[1].get<std::string>(), trace_id))
                ++matching;
        }
    }
}

} // namespace

CheckResult trace_e2e(CheckContext& c) {
    const auto trace_id = c.options().trace_id.empty() ? random_trace_id() : c.options().trace_id;
    const auto span_id = random_span_id();
    bool sent = false;
    bool v2_route = true;
    const auto tempo = c.endpoint("tempo");
    return c.poll([&]() -> Attempt {
        if (!sent) {
            if (auto err =
                    send_traced_request(c, k_trace_method, k_trace_target, trace_id, span_id);
                !err.empty())
                return again(err);
            sent = true;
        }
        // grafana/tempo@v2.10.8:pkg/api/http.go: /api/v2/traces/<id> answers
        // {"trace":{"resourceSpans":[…]}}; 2.3.1 has no such route (404 "404 page not found"), and
        // both serve /api/traces/<id> as v1 {"batches":[…]} (404 "trace not found" until found).
        // Both 404s look alike but for their text, so the route is judged by status codes alone:
        // a v2 404 is followed by the v1 request, and v1 finding what v2 did not means the v2
        // route is missing (an older Tempo); the polls after that ask v1 only.
        HttpResponse r;
        if (v2_route)
            r = c.get(fmt::format("{}/api/v2/traces/{}", tempo, trace_id),
                      "trace " + trace_id + " (v2)");
        // No answer at all (status 0) is reported as it is: a second request would only find
        // the deadline spent.
        if (!v2_route || (r.status != 200 && r.status != 0)) {
            const bool v2_missing = v2_route && r.status == 404;
            r = c.get(fmt::format("{}/api/traces/{}", tempo, trace_id), "trace " + trace_id);
            if (v2_missing && r.status == 200)
                v2_route = false;
        }
        if (r.status == 404)
            return again(fmt::format("Tempo has no trace {} yet", trace_id));
        const auto j = parse_json(r.body);
        std::optional<std::vector<Span>> found;
        try {
            if (r.status == 200 && j)
                found = tempo_spans(*j);
        } catch (const nlohmann::json::exception&) {
            found.reset(); // a span with members of other types than documented
        }
        if (!found)
            return again(fmt::format("Tempo: {}", describe_json(r, j)));
        const auto& spans = *found;
        const Span* server = nullptr;
        for (const auto& s : spans) {
            const auto route =
                s.attributes.count("http.route") ? s.attributes.at("http.route") : std::string();
            if (s.trace_id == trace_id && s.kind == "SERVER" &&
                (route == k_trace_route || s.name == k_trace_method + " " + k_trace_route)) {
                server = &s;
                break;
            }
        }
        if (!server)
            return again(fmt::format("trace {} has {} span(s) but no SERVER span for {} {}",
                                     trace_id, spans.size(), k_trace_method, k_trace_route));
        if (server->parent_id != span_id)
            return failed(fmt::format(
                "SERVER span '{}' has parent {}, expected labctl's span {}", server->name,
                server->parent_id.empty() ? "none" : server->parent_id, span_id));
        int db_children = 0;
        for (const auto& s : spans)
            if (s.kind == "CLIENT" && s.parent_id == server->span_id &&
                (s.attributes.count("db.system.name") || s.attributes.count("db.system")))
                ++db_children;
        if (db_children == 0)
            return again(fmt::format("SERVER span '{}' has no DB CLIENT child yet", server->name));
        // Tempo's search lists ids with leading zeros stripped: informative only (index lag).
        const auto s = c.get(fmt::format("{}/api/search?tags={}&limit=100", tempo,
                                         url_encode("service.name=" + c.options().service_name)),
                             "search");
        bool listed = false;
        if (const auto sj = parse_json(s.body); s.status == 200 && sj)
            if (const auto* traces = member(*sj, "traces"); traces && traces->is_array())
                for (const auto& t : *traces)
                    if (normalize_trace_id(string_member(t, "traceID")) == trace_id)
                        listed = true;
        c.result().evidence.back().note =
            listed ? "search lists the trace" : "search does not list the trace yet";
        return passed(fmt::format("trace {}: SERVER span '{}' (service {}) child of labctl's span "
                                  "{}, {} DB CLIENT child span{}",
                                  trace_id, server->name, server->service, span_id, db_children,
                                  db_children == 1 ? "" : "s"));
    });
}

CheckResult logs_correlated(CheckContext& c) {
    const auto trace_id = c.options().trace_id.empty() ? random_trace_id() : c.options().trace_id;
    const auto span_id = random_span_id();
    const auto since = std::chrono::system_clock::now() - std::chrono::minutes(5);
    bool sent = false;
    const auto& svc = c.options().service_name;
    // Loki 3.x native OTLP (grafana/loki@v3.7.6:pkg/loghttp/push/otlp.go): resource attribute
    // service.name becomes the index label service_name, the record's trace id the structured
    // metadata trace_id (lowercase hex). Loki 2.9 behind the collector's loki exporter:
    // exporter="OTLP" label, the record as a JSON line with traceid.
    const std::vector<std::string> queries{
        fmt::format(R"({{service_name="{}"}} | trace_id="{}")", svc, trace_id),
        fmt::format(R"({{exporter="OTLP"}} |= "{}")", trace_id),
    };
    return c.poll([&]() -> Attempt {
        if (!sent) {
            if (auto err = send_traced_request(c, "GET", k_log_target, trace_id, span_id);
                !err.empty())
                return again(err);
            sent = true;
        }
        std::string last;
        for (const auto& q : queries) {
            const auto url = fmt::format(
                "{}/loki/api/v1/query_range?query={}&start={}&end={}&limit=100&direction=backward",
                c.endpoint("loki"), url_encode(q), unix_ns(since),
                unix_ns(std::chrono::system_clock::now() + std::chrono::minutes(1)));
            // Loki ≥ 3 (grafana/loki@v3.7.6:pkg/util/marshal/query.go): with this header each
            // value gets a third element {"structuredMetadata":{…},"parsed":{…}} and the stream
            // keeps only its index labels; without it they are merged into "stream". 2.9 ignores
            // it.
            HttpRequest req;
            req.url = url;
            req.headers["X-Loki-Response-Encoding-Flags"] = "categorize-labels";
            const auto r = c.send(req, q);
            const auto j = parse_json(r.body);
            const auto* data = j ? member(*j, "data") : nullptr;
            const auto* result = data ? member(*data, "result") : nullptr;
            int lines = 0, matching = 0;
            bool readable = r.status == 200 && result && result->is_array();
            try {
                if (readable)
                    count_lines(*result, trace_id, lines, matching);
            } catch (const nlohmann::json::exception&) {
                readable = false; // a stream with members of other types than documented
            }
            if (!readable) {
                last = fmt::format("Loki: {}", describe_json(r, j));
                continue;
            }
            c.result().evidence.back().note =
                fmt::format("{} line(s), {} with the trace id", lines, matching);
            if (matching > 0)
                return passed(fmt::format("{} log line{} in Loki carry trace {}", matching,
                                          matching == 1 ? "" : "s", trace_id));
            last = fmt::format("no log line with trace {} yet", trace_id);
        }
        return again(last);
    });
}

} // namespace labctl::verify::detail
