#include <fmt/format.h>

#include <cctype>
#include <ctime>

#include <labctl/core/duration.hpp>
#include <labctl/core/table.hpp>
#include <labctl/core/text.hpp>
#include <labctl/report/report.hpp>

namespace labctl::report {

namespace {

using verify::CheckResult;
using verify::Status;

double seconds(std::chrono::milliseconds d) {
    return static_cast<double>(d.count()) / 1000.0;
}

std::string upper(Status s) {
    switch (s) {
    case Status::pass:
        return "PASS";
    case Status::fail:
        return "FAIL";
    case Status::skip:
        return "SKIP";
    }
    return "FAIL";
}

/// At most `limit` code points (UTF-8 aware), "…" when cut; newlines become spaces.
std::string one_line(const std::string& text, std::size_t limit) {
    std::string out;
    std::size_t points = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto u = static_cast<unsigned char>(text[i]);
        if ((u & 0xC0) != 0x80) {
            if (points == limit) {
                out += "…";
                return out;
            }
            ++points;
        }
        out.push_back(u < 0x20 ? ' ' : text[i]);
    }
    return out;
}

/// The host as one classname segment: Jenkins splits classnames at dots into packages.
std::string host_segment(const std::string& host) {
    std::string out;
    for (const char c : host) {
        const auto u = static_cast<unsigned char>(c);
        out.push_back(std::isalnum(u) != 0 || c == '-' || c == '_' ? c : '_');
    }
    return out.empty() ? "local" : out;
}

std::string evidence_text(const CheckResult& r) {
    std::string out;
    for (const auto& e : r.evidence) {
        out += e.summary() + "\n";
        if (!e.excerpt.empty())
            out += "    " + e.excerpt + "\n";
    }
    return out;
}

} // namespace

Summary summarize(const std::vector<CheckResult>& results, std::chrono::milliseconds wall) {
    Summary s;
    s.wall = wall;
    for (const auto& r : results) {
        if (r.status == Status::pass)
            ++s.passed;
        else if (r.status == Status::fail)
            ++s.failed;
        else
            ++s.skipped;
    }
    return s;
}

std::string human(const std::vector<CheckResult>& results, const Summary& summary) {
    Table table({"CHECK", "STATUS", "TIME", "EVIDENCE"});
    for (const auto& r : results)
        table.add({r.name, upper(r.status), format_duration(r.duration), one_line(r.message, 100)});
    std::string out = table.render();
    for (const auto& r : results) {
        if (r.status != Status::fail)
            continue;
        out += fmt::format("\n{}: {}\n", r.name, r.message);
        for (const auto& e : r.evidence)
            out += fmt::format("  {}\n", one_line(e.summary(), 160));
    }
    out += fmt::format("\n{} passed, {} failed, {} skipped in {}\n", summary.passed, summary.failed,
                       summary.skipped, format_duration(summary.wall));
    return out;
}

nlohmann::json to_json(const std::string& host, const std::vector<CheckResult>& results,
                       const Summary& summary) {
    nlohmann::json checks = nlohmann::json::array();
    for (const auto& r : results) {
        nlohmann::json evidence = nlohmann::json::array();
        for (const auto& e : r.evidence)
            evidence.push_back(
                {{"url", e.url}, {"status", e.status}, {"note", e.note}, {"excerpt", e.excerpt}});
        checks.push_back({{"name", r.name},
                          {"group", r.group()},
                          {"status", verify::to_string(r.status)},
                          {"seconds", seconds(r.duration)},
                          {"attempts", r.attempts},
                          {"message", r.message},
                          {"evidence", evidence}});
    }
    return {{"schema", 1},
            {"host", host},
            {"ok", summary.ok()},
            {"summary",
             {{"passed", summary.passed},
              {"failed", summary.failed},
              {"skipped", summary.skipped},
              {"seconds", seconds(summary.wall)}}},
            {"checks", checks}};
}

std::string to_junit(const std::string& host, const std::vector<CheckResult>& results,
                     const Summary& summary) {
    return to_junit({{host, results, summary}});
}

std::string to_junit(const std::vector<HostReport>& hosts) {
    std::string suites;
    int tests = 0, failed = 0, skipped = 0;
    std::chrono::milliseconds wall{0};
    for (const auto& [host, results, summary] : hosts) {
        const auto h = host_segment(host);
        std::string cases;
        for (const auto& r : results) {
            cases += fmt::format(
                "    <testcase classname=\"labctl.{}.{}\" name=\"{}\" time=\"{:.3f}\">\n",
                xml_escape(h), xml_escape(r.group()), xml_escape(r.name), seconds(r.duration));
            if (r.status == Status::fail)
                cases += fmt::format(
                    "      <failure message=\"{}\" type=\"labctl.verify.{}\">{}</failure>\n",
                    xml_escape(one_line(r.message, 300)), xml_escape(r.name),
                    xml_escape(r.message));
            else if (r.status == Status::skip)
                cases += fmt::format("      <skipped message=\"{}\"/>\n", xml_escape(r.message));
            cases += fmt::format("      <system-out>{}{}</system-out>\n",
                                 xml_escape(r.message + "\n"), xml_escape(evidence_text(r)));
            cases += "    </testcase>\n";
        }
        const int n = static_cast<int>(results.size());
        suites += fmt::format(
            "  <testsuite name=\"labctl.verify.{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" "
            "skipped=\"{}\" time=\"{:.3f}\" timestamp=\"{}\" hostname=\"{}\">\n"
            "{}"
            "  </testsuite>\n",
            xml_escape(h), n, summary.failed, summary.skipped, seconds(summary.wall),
            utc_now("%Y-%m-%dT%H:%M:%S"), xml_escape(host), cases);
        tests += n;
        failed += summary.failed;
        skipped += summary.skipped;
        wall += summary.wall;
    }
    return fmt::format("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                       "<testsuites name=\"labctl verify\" tests=\"{}\" failures=\"{}\" "
                       "errors=\"0\" skipped=\"{}\" time=\"{:.3f}\">\n"
                       "{}"
                       "</testsuites>\n",
                       tests, failed, skipped, seconds(wall), suites);
}

} // namespace labctl::report
