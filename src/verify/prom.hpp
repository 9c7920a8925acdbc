#pragma once
// Private to src/verify: PromQL evaluation against Prometheus' /api/v1/query, the traffic verify
// sends so the SLI series exist, and Grafana's template variables.

#include <string>
#include <vector>

#include "context.hpp"

namespace labctl::verify::detail {

struct PromAnswer {
    enum Kind { ok, bad_query, unavailable } kind = unavailable;
    std::string detail;
    std::size_t series = 0; ///< 0 for an empty vector: the series do not exist (yet)
};

/// Evaluates a PromQL expression (prometheus/prometheus@v2.48.1:web/api/v1/api.go): ok (values
/// may be "NaN", result may be []), bad_query (400 bad_data, 422 execution — waiting will not fix
/// it) or unavailable (no answer, 503, ...).
PromAnswer evaluate(CheckContext& c, const std::string& expr, const std::string& note);

/// Sends verify's own traffic through nginx once it all succeeds: GET /api/tasks a few times and
/// one POST /api/smoke/db?ops=1&type=read (the DB series). Only successful requests: verify never
/// creates an error series. Returns an empty string when every request answered 2xx, else why.
std::string send_sli_traffic(CheckContext& c);

/// Grafana template variables Prometheus does not know, replaced by fixed values.
std::string substitute_grafana_variables(std::string expr);

} // namespace labctl::verify::detail
