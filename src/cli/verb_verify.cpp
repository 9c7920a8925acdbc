#include "app.hpp"

namespace labctl::cli {

namespace {
struct VerifyOptions {
    std::string host;
    std::vector<std::string> only;
    std::vector<std::string> skip;
    std::string deadline;
    std::string junit;
};
} // namespace

Runner register_verify(CLI::App& app, Context& /*ctx*/) {
    auto opts = std::make_shared<VerifyOptions>();
    auto* sub = app.add_subcommand(
        "verify", "Prove the telemetry chain end to end: targets, traces, logs, dashboards");
    const auto& checks = config::known_checks();
    sub->add_option("--host", opts->host, "Verify an existing host (no libvirt needed)")
        ->type_name("[USER@]HOST[:PORT]");
    std::string names;
    for (const auto& c : checks)
        names += (names.empty() ? "" : ", ") + c;
    sub->add_option("--only", opts->only, "Run only this check (repeatable): " + names)
        ->check(one_of(checks))
        ->type_name("CHECK");
    sub->add_option("--skip", opts->skip, "Skip this check (repeatable)")
        ->check(one_of(checks))
        ->type_name("CHECK");
    sub->add_option("--deadline", opts->deadline, "Deadline per check, e.g. 90s or 3m")
        ->type_name("DURATION");
    sub->add_option("--junit", opts->junit, "Write a JUnit XML report to FILE")->type_name("FILE");
    return []() -> int {
        not_available("verify");
    };
}

} // namespace labctl::cli
