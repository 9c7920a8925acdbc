#include <fmt/format.h>
#include <fmt/ranges.h>

#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/table.hpp>
#include <labctl/provision/lab.hpp>
#include <labctl/provision/snapshot.hpp>

#include "app.hpp"
#include "lab_output.hpp"

namespace labctl::cli {

namespace {

nlohmann::json snapshot_names(const std::vector<provision::SnapshotInfo>& snapshots) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& s : snapshots)
        out.push_back({{"name", s.name}, {"created", s.created}, {"vms", s.vms}});
    return out;
}

} // namespace

Runner register_status(CLI::App& app, Context& ctx) {
    app.add_subcommand("status", "Show the lab's VMs, their state and addresses");
    return [&ctx]() -> int {
        const auto spec = load_spec(ctx);
        const auto lab = provision::status_lab(spec);
        std::vector<provision::SnapshotInfo> snapshots;
        // The VMs' states are status's answer; the snapshots are extra: a failure to read them
        // is said, not fatal.
        if (lab.unreachable.empty()) {
            try {
                snapshots = provision::snapshot_list(spec);
            } catch (const Error& e) {
                log::warn("the lab's snapshots could not be read: {}", e.what());
            }
        }
        const bool several = spec.several_hosts();
        // The first unreachable host is the command's error (below); the others are said here.
        for (std::size_t i = 1; i < lab.unreachable.size(); ++i)
            log::warn("host '{}' ({}) could not be read: {}", lab.unreachable[i].host,
                      lab.unreachable[i].uri, lab.unreachable[i].message);
        if (ctx.global.json()) {
            nlohmann::json list = nlohmann::json::array();
            for (const auto& v : lab.vms)
                list.push_back({{"vm", v.vm},
                                {"host", v.host},
                                {"domain", v.domain},
                                {"state", v.state},
                                {"address", v.address},
                                {"spec", v.spec}});
            print_json({{"project", spec.project},
                        {"uri", spec.libvirt.uri},
                        {"hosts", hosts_json(spec)},
                        {"vms", list},
                        {"snapshots", snapshot_names(snapshots)}});
        } else {
            Table t = several ? Table({"HOST", "VM", "DOMAIN", "STATE", "ADDRESS", "SPEC"})
                              : Table({"VM", "DOMAIN", "STATE", "ADDRESS", "SPEC"});
            for (const auto& v : lab.vms) {
                std::vector<std::string> row{v.vm, v.domain.empty() ? "-" : v.domain, v.state,
                                             v.address.empty() ? "-" : v.address, v.spec};
                if (several)
                    row.insert(row.begin(), v.host);
                t.add(std::move(row));
            }
            std::string text = t.render() + "\n";
            if (!snapshots.empty()) {
                std::vector<std::string> names;
                for (const auto& s : snapshots)
                    names.push_back(fmt::format("{} ({})", s.name, s.created));
                text += fmt::format("Snapshots: {}\n", fmt::join(names, ", "));
            }
            print(text);
        }
        // What could be read is shown first; an unreachable host still fails the command.
        throw_host_failures(spec, lab.unreachable, "read");
        return 0;
    };
}

} // namespace labctl::cli
