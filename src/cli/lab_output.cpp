#include <fmt/format.h>
#include <fmt/ranges.h>

#include <labctl/core/error.hpp>

#include "lab_output.hpp"

namespace labctl::cli {

nlohmann::json hosts_json(const config::LabSpec& spec) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& h : spec.hosts)
        out.push_back({{"name", h.name}, {"uri", h.libvirt.uri}});
    return out;
}

Table changes_table(const std::vector<provision::Change>& changes, bool several) {
    Table t = several ? Table({"HOST", "ACTION", "KIND", "NAME", "DETAIL"})
                      : Table({"ACTION", "KIND", "NAME", "DETAIL"});
    for (const auto& c : changes) {
        std::vector<std::string> row{c.action, c.kind, c.name, c.detail};
        if (several)
            row.insert(row.begin(), c.host);
        t.add(std::move(row));
    }
    return t;
}

nlohmann::json changes_json(const std::vector<provision::Change>& changes) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& c : changes)
        out.push_back({{"action", c.action},
                       {"kind", c.kind},
                       {"name", c.name},
                       {"detail", c.detail},
                       {"host", c.host}});
    return out;
}

void throw_host_failures(const config::LabSpec& spec,
                         const std::vector<provision::HostFailure>& failures,
                         const std::string& doing) {
    if (failures.empty())
        return;
    const auto& f = failures.front();
    if (f.code == ExitCode::interrupted)
        throw Interrupted();
    if (!spec.several_hosts())
        throw Error(f.code, f.message, f.hint);
    std::vector<std::string> names;
    for (const auto& x : failures)
        names.push_back(x.host);
    throw Error(f.code,
                fmt::format("host '{}' ({}) could not be {}: {}", f.host, f.uri, doing, f.message),
                failures.size() > 1
                    ? fmt::format("{}{}hosts that failed: {}", f.hint, f.hint.empty() ? "" : "; ",
                                  fmt::join(names, ", "))
                    : f.hint);
}

} // namespace labctl::cli
