#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>

#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/parallel.hpp>
#include <labctl/core/table.hpp>
#include <labctl/core/terminal.hpp>
#include <labctl/provision/doctor.hpp>

#include "app.hpp"

namespace labctl::cli {

namespace {

/// The lab file when there is one: an explicitly named file (-f, LABCTL_FILE) must load; the
/// default lab.yaml is optional, doctor then checks the host alone.
std::optional<config::LabSpec> doctor_spec(const Context& ctx) {
    const bool named = (ctx.root != nullptr && ctx.root->get_option("--file")->count() > 0) ||
                       terminal::env("LABCTL_FILE").value_or("") != "";
    std::error_code ec;
    if (!named && !std::filesystem::exists(ctx.global.file, ec)) {
        log::info("no {} here: checking the host only (lab checks are skipped)", ctx.global.file);
        return std::nullopt;
    }
    return load_spec(ctx);
}

nlohmann::json report_json(const provision::DoctorReport& report, const Context& ctx) {
    nlohmann::json checks = nlohmann::json::array();
    for (const auto& c : report.checks) {
        nlohmann::json j{{"name", c.name},
                         {"status", provision::status_name(c.status)},
                         {"required", c.required},
                         {"detail", c.detail},
                         {"hint", c.hint}};
        if (!c.host.empty())
            j["host"] = c.host;
        checks.push_back(std::move(j));
    }
    return {{"lab_file", report.have_spec ? nlohmann::json(ctx.global.file) : nlohmann::json()},
            {"uri", report.uri},
            {"ok", report.failed_required().empty()},
            {"summary",
             {{"ok", report.count(provision::CheckStatus::ok)},
              {"warn", report.count(provision::CheckStatus::warn)},
              {"fail", report.count(provision::CheckStatus::fail)},
              {"skip", report.count(provision::CheckStatus::skip)}}},
            {"checks", checks}};
}

/// "libvirt.uri (kvm2)" for a check about one host of several.
std::string check_label(const provision::DoctorCheck& c) {
    return c.host.empty() ? c.name : fmt::format("{} ({})", c.name, c.host);
}

std::string report_table(const provision::DoctorReport& report) {
    Table table({"CHECK", "STATUS", "DETAIL"});
    for (const auto& c : report.checks)
        table.add({check_label(c), std::string(provision::status_name(c.status)), c.detail});
    std::string out = table.render();
    std::string hints;
    for (const auto& c : report.checks)
        if (!c.hint.empty() &&
            (c.status == provision::CheckStatus::fail || c.status == provision::CheckStatus::warn))
            hints += fmt::format("  {}: {}\n", check_label(c), c.hint);
    if (!hints.empty())
        out += "\nHints:\n" + hints;
    out += fmt::format(
        "\nDoctor: {} ok, {} warn, {} fail, {} skipped.\n",
        report.count(provision::CheckStatus::ok), report.count(provision::CheckStatus::warn),
        report.count(provision::CheckStatus::fail), report.count(provision::CheckStatus::skip));
    return out;
}

/// One report for the lab: with several hosts, each host's checks (run at once, one connection
/// per host) named with the host, and the checks about this machine once.
provision::DoctorReport lab_report(const std::optional<config::LabSpec>& spec,
                                   const provision::DoctorOptions& opts) {
    if (!spec || !spec->several_hosts())
        return provision::run_doctor(spec, opts);
    std::vector<provision::DoctorReport> reports(spec->hosts.size());
    parallel_for(spec->hosts.size(), spec->hosts.size(), [&](std::size_t i) {
        reports[i] = provision::run_doctor(spec->for_host(spec->hosts[i]), opts);
    });
    provision::DoctorReport out = reports.front();
    out.checks.clear();
    for (std::size_t i = 0; i < reports.size(); ++i)
        for (auto& c : reports[i].checks) {
            const bool per_host = provision::is_host_check(c.name);
            if (!per_host && i > 0)
                continue;
            if (per_host)
                c.host = spec->hosts[i].name;
            out.checks.push_back(std::move(c));
        }
    return out;
}

int run_doctor(const Context& ctx) {
    const auto spec = doctor_spec(ctx);
    provision::DoctorOptions opts;
    opts.uri = config::environment_value_for("libvirt.uri").value_or(config::LibvirtSpec{}.uri);
    const auto report = lab_report(spec, opts);
    if (ctx.global.json())
        print_json(report_json(report, ctx));
    else
        print(report_table(report));
    const auto failed = report.failed_required();
    if (!failed.empty()) {
        throw Error(ExitCode::preflight,
                    fmt::format("{} required check{} failed: {}", failed.size(),
                                failed.size() == 1 ? "" : "s", fmt::join(failed, ", ")),
                    "fix what the hints above say, then run 'labctl doctor' again");
    }
    return 0;
}

} // namespace

Runner register_doctor(CLI::App& app, Context& ctx) {
    app.add_subcommand("doctor", "Check this host: KVM, libvirt, pool, network, tools, key, disk");
    return [&ctx]() -> int {
        return run_doctor(ctx);
    };
}

} // namespace labctl::cli
