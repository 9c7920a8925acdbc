#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>

#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
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
    for (const auto& c : report.checks)
        checks.push_back({{"name", c.name},
                          {"status", provision::status_name(c.status)},
                          {"required", c.required},
                          {"detail", c.detail},
                          {"hint", c.hint}});
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

std::string report_table(const provision::DoctorReport& report) {
    Table table({"CHECK", "STATUS", "DETAIL"});
    for (const auto& c : report.checks)
        table.add({c.name, std::string(provision::status_name(c.status)), c.detail});
    std::string out = table.render();
    std::string hints;
    for (const auto& c : report.checks)
        if (!c.hint.empty() &&
            (c.status == provision::CheckStatus::fail || c.status == provision::CheckStatus::warn))
            hints += fmt::format("  {}: {}\n", c.name, c.hint);
    if (!hints.empty())
        out += "\nHints:\n" + hints;
    out += fmt::format(
        "\nDoctor: {} ok, {} warn, {} fail, {} skipped.\n",
        report.count(provision::CheckStatus::ok), report.count(provision::CheckStatus::warn),
        report.count(provision::CheckStatus::fail), report.count(provision::CheckStatus::skip));
    return out;
}

int run_doctor(const Context& ctx) {
    const auto spec = doctor_spec(ctx);
    provision::DoctorOptions opts;
    opts.uri = config::environment_value_for("libvirt.uri").value_or(config::LibvirtSpec{}.uri);
    const auto report = provision::run_doctor(spec, opts);
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
