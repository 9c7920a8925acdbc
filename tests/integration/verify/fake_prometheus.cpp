// The Prometheus fixture (fake_stack.hpp). The definitive proof is a real Prometheus (the stack
// config test); this one reproduces the answer shapes and, by a simple rule, which series exist.

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <regex>

#include "fake_internal.hpp"
#include "fake_stack.hpp"

namespace labctl::test::verify {

using nlohmann::json;
using namespace detail;

namespace {

bool balanced(const std::string& expr) {
    int depth = 0;
    for (const char c : expr) {
        if (c == '(' || c == '[' || c == '{')
            ++depth;
        else if (c == ')' || c == ']' || c == '}')
            --depth;
        if (depth < 0)
            return false;
    }
    return depth == 0;
}

std::string trim(const std::string& s) {
    const auto b = s.find_first_not_of(" \t\n");
    if (b == std::string::npos)
        return {};
    return s.substr(b, s.find_last_not_of(" \t\n") - b + 1);
}

bool ident_start(char c) {
    return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':';
}
bool ident_char(char c) {
    return ident_start(c) || std::isdigit(static_cast<unsigned char>(c));
}

/// Index of the bracket closing the one at `open` (strings skipped); npos when none.
std::size_t closing(const std::string& e, std::size_t open) {
    int depth = 0;
    for (std::size_t i = open; i < e.size(); ++i) {
        const char c = e[i];
        if (c == '"' || c == '\'') {
            const auto end = e.find(c, i + 1);
            if (end == std::string::npos)
                return std::string::npos;
            i = end;
        } else if (c == '(' || c == '[' || c == '{') {
            ++depth;
        } else if (c == ')' || c == ']' || c == '}') {
            if (--depth == 0)
                return i;
        }
    }
    return std::string::npos;
}

/// Splits at depth-0 occurrences of the keyword `word` (e.g. "or") or of a comma (word ",").
std::vector<std::string> split_top(const std::string& e, const std::string& word) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (std::size_t i = 0; i < e.size(); ++i) {
        const char c = e[i];
        if (c == '(' || c == '[' || c == '{' || c == '"' || c == '\'') {
            const auto end = c == '"' || c == '\'' ? e.find(c, i + 1) : closing(e, i);
            if (end == std::string::npos)
                break;
            i = end;
            continue;
        }
        if (word == ","
                ? c == ','
                : e.compare(i, word.size(), word) == 0 && (i == 0 || !ident_char(e[i - 1])) &&
                      (i + word.size() >= e.size() || !ident_char(e[i + word.size()]))) {
            parts.push_back(e.substr(start, i - start));
            start = i + word.size();
            i = start - 1;
        }
    }
    parts.push_back(e.substr(start));
    return parts;
}

const std::vector<std::string> k_keywords{
    "by",     "without", "on", "ignoring", "group_left", "group_right", "bool",
    "offset", "and",     "or", "unless",   "inf",        "nan"};
const std::vector<std::string> k_aggregations{
    "sum",  "avg",     "min",      "max",          "count", "stddev", "stdvar",
    "topk", "bottomk", "quantile", "count_values", "group", "limitk", "limit_ratio"};

bool contains(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

} // namespace

// The rule (documented in fake_stack.hpp): an expression has a series when every metric selector
// it needs has one; `a or b` has one when either side has; `vector(s)` always has one; number
// literals are neutral; grouping clauses (by/without/on/ignoring (…)) name labels, not metrics.
bool FakeStack::has_series(const std::string& expr) const {
    std::string e = trim(expr);
    while (!e.empty() && e.front() == '(' && closing(e, 0) == e.size() - 1)
        e = trim(e.substr(1, e.size() - 2));
    if (const auto alternatives = split_top(e, "or"); alternatives.size() > 1)
        return std::any_of(alternatives.begin(), alternatives.end(),
                           [&](const std::string& a) { return has_series(a); });
    if (const auto both = split_top(e, "and"); both.size() > 1)
        return std::all_of(both.begin(), both.end(),
                           [&](const std::string& a) { return has_series(a); });
    std::string previous_ident;
    for (std::size_t i = 0; i < e.size(); ++i) {
        const char c = e[i];
        if (std::isspace(static_cast<unsigned char>(c)))
            continue;
        if (c == '"' || c == '\'') {
            i = e.find(c, i + 1);
            previous_ident.clear();
            if (i == std::string::npos)
                return false;
            continue;
        }
        if (c == '[' || c == '{') { // ranges, offsets and stray matchers
            i = closing(e, i);
            if (i == std::string::npos)
                return false;
            continue;
        }
        if (c == '(') {
            const auto end = closing(e, i);
            if (end == std::string::npos)
                return false;
            const std::string inner = e.substr(i + 1, end - i - 1);
            const std::string fn = previous_ident;
            previous_ident.clear();
            i = end;
            if (contains({"by", "without", "on", "ignoring", "group_left", "group_right"}, fn))
                continue;
            if (fn == "vector")
                continue; // vector(s) always has a series
            if (fn.empty()) {
                if (!has_series(inner))
                    return false;
                continue;
            }
            for (const auto& arg : split_top(inner, ",")) {
                const auto a = trim(arg);
                if (a.empty() || std::isdigit(static_cast<unsigned char>(a.front())) ||
                    a.front() == '"' || a.front() == '.' || a.front() == '-')
                    continue; // a number or string parameter
                if (!has_series(a))
                    return false;
            }
            continue;
        }
        if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') {
            while (i + 1 < e.size() && (ident_char(e[i + 1]) || e[i + 1] == '.'))
                ++i; // a number or a duration
            previous_ident.clear();
            continue;
        }
        if (ident_start(c)) {
            std::size_t j = i;
            while (j < e.size() && ident_char(e[j]))
                ++j;
            const std::string name = e.substr(i, j - i);
            std::size_t k = j;
            while (k < e.size() && std::isspace(static_cast<unsigned char>(e[k])))
                ++k;
            i = j - 1;
            if (k < e.size() && e[k] == '(') {
                previous_ident = name; // a function or aggregation call
                i = k - 1;
                continue;
            }
            previous_ident = contains(k_keywords, name) ? name : std::string();
            if (contains(k_keywords, name) || contains(k_aggregations, name))
                continue;
            std::string matchers;
            if (k < e.size() && e[k] == '{') {
                const auto end = closing(e, k);
                if (end == std::string::npos)
                    return false;
                matchers = e.substr(k + 1, end - k - 1);
                i = end;
            }
            if (!metric_exists(name, matchers))
                return false;
            continue;
        }
        previous_ident.clear(); // an operator
    }
    return true;
}

// Which metrics exist (the task API's, app/src/metrics.cpp), from what the fake API served:
// - http_requests_total, http_request_duration_seconds_*: after the first /api/* request; a
//   status_code matcher (=, !=, =~, !~) must match a status the API answered;
// - http_errors_total: after the first answer >= 400;
// - db_query_duration_seconds_*: after POST /api/smoke/db (it always runs SQL);
// - up, scrape_*, prometheus_*, process_*: always (the scrape targets);
// - anything else, and Quirks::absent_metrics: never.
bool FakeStack::metric_exists(const std::string& name, const std::string& matchers) const {
    if (contains(m_quirks.absent_metrics, name))
        return false;
    const auto family = [&](const std::string& base) {
        return name == base || name == base + "_bucket" || name == base + "_sum" ||
               name == base + "_count";
    };
    std::vector<int> statuses = m_api_statuses;
    if (name == "http_errors_total")
        statuses.erase(
            std::remove_if(statuses.begin(), statuses.end(), [](int s) { return s < 400; }),
            statuses.end());
    else if (!family("http_requests_total") && !family("http_request_duration_seconds"))
        statuses.clear();
    if (family("db_query_duration_seconds"))
        return m_api_smoke;
    if (name == "up" || name.rfind("scrape_", 0) == 0 || name.rfind("prometheus_", 0) == 0 ||
        name.rfind("process_", 0) == 0)
        return true;
    static const std::regex k_status(R"re(status_code\s*(=~|!~|!=|=)\s*"([^"]*)")re");
    std::smatch m;
    if (std::regex_search(matchers, m, k_status)) {
        const std::string op = m[1];
        const std::regex value(m[2].str());
        return std::any_of(statuses.begin(), statuses.end(), [&](int s) {
            const auto text = std::to_string(s);
            if (op == "=")
                return text == m[2].str();
            if (op == "!=")
                return text != m[2].str();
            const bool match = std::regex_match(text, value);
            return op == "=~" ? match : !match;
        });
    }
    return !statuses.empty();
}

// prometheus/prometheus@v2.48.1 (and @v3.14.0) web/api/v1/api.go: {"status":"success","data":
// {"resultType":"vector","result":[…]}}, sample values as strings; a selector without series
// gives "result": [] (not an error, not "NaN"); errors {"status":"error","errorType":…,"error":…}
// with 400 bad_data (unparsable), 422 execution, 503 unavailable/timeout. /-/ready → 200
// "Prometheus Server is Ready." (web/web.go). /api/v1/targets: data.activeTargets[].
Reply FakeStack::prometheus(const Request& r) {
    if (r.path == "/-/ready")
        return {200, "Prometheus Server is Ready.\n", "text/plain; charset=utf-8"};
    if (r.path == "/api/v1/targets") {
        json targets = json::array();
        for (const auto& job : m_quirks.jobs)
            targets.push_back({{"discoveredLabels", {{"job", job}}},
                               {"labels", {{"job", job}, {"instance", job + ":9100"}}},
                               {"scrapePool", job},
                               {"scrapeUrl", "http://" + job + ":9100/metrics"},
                               {"globalUrl", "http://" + job + ":9100/metrics"},
                               {"lastError", ""},
                               {"lastScrape", "2026-11-27T06:00:00Z"},
                               {"lastScrapeDuration", 0.002},
                               {"health", "up"},
                               {"scrapeInterval", "15s"},
                               {"scrapeTimeout", "10s"}});
        return {200, json{{"status", "success"},
                          {"data", {{"activeTargets", targets}, {"droppedTargets", json::array()}}}}
                         .dump()};
    }
    if (r.path == "/api/v1/query") {
        const auto q = r.param("query");
        if (trim(q).empty())
            return {400, json{{"status", "error"},
                              {"errorType", "bad_data"},
                              {"error", "invalid parameter \"query\": unknown position: parse "
                                        "error: no expression found in input"}}
                             .dump()};
        if (!balanced(q))
            return {400, json{{"status", "error"},
                              {"errorType", "bad_data"},
                              {"error", fmt::format("invalid parameter \"query\": 1:{}: parse "
                                                    "error: unclosed left parenthesis",
                                                    q.size())}}
                             .dump()};
        bool exists = false;
        {
            std::lock_guard lock(m_mutex);
            exists = has_series(q);
        }
        json result = json::array();
        if (exists)
            result.push_back(
                {{"metric", json::object()},
                 {"value", json::array({static_cast<double>(now_ns() / 1000000) / 1e3, "1"})}});
        return {200, json{{"status", "success"},
                          {"data", {{"resultType", "vector"}, {"result", result}}}}
                         .dump()};
    }
    return {404, "404 page not found\n", "text/plain; charset=utf-8"};
}

} // namespace labctl::test::verify
