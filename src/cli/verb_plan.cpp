#include <fmt/format.h>

#include <labctl/core/exit_code.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/table.hpp>
#include <labctl/provision/lab.hpp>
#include <labctl/provision/plan.hpp>

#include "app.hpp"
#include "built_image.hpp"

namespace labctl::cli {

namespace {

struct PlanOptions {
    bool detailed_exitcode = false;
    bool offline = false;
};

nlohmann::json plan_json(const provision::Plan& plan) {
    nlohmann::json resources = nlohmann::json::array();
    for (const auto& item : plan.items)
        resources.push_back({{"action", provision::action_name(item.action)},
                             {"kind", provision::kind_name(item.kind)},
                             {"name", item.name},
                             {"vm", item.vm},
                             {"detail", item.detail},
                             {"restarts", item.restarts},
                             {"loses_data", item.loses_data}});
    return {{"project", plan.project},
            {"uri", plan.uri},
            {"offline", plan.offline},
            {"changes", plan.has_changes()},
            {"summary",
             {{"create", plan.count(provision::PlanAction::create)},
              {"keep", plan.count(provision::PlanAction::keep)},
              {"update", plan.count(provision::PlanAction::update)},
              {"replace", plan.count(provision::PlanAction::replace)},
              {"delete", plan.count(provision::PlanAction::remove)}}},
            {"resources", resources},
            {"warnings", plan.warnings}};
}

std::string plan_table(const provision::Plan& plan) {
    Table table({"ACTION", "KIND", "NAME", "DETAIL"});
    for (const auto& item : plan.items)
        table.add({std::string(provision::action_name(item.action)),
                   std::string(provision::kind_name(item.kind)), item.name, item.detail});
    return table.render() + "\n" + plan.summary() + "\n";
}

int run_plan(const Context& ctx, const PlanOptions& opts) {
    auto spec = load_spec(ctx);
    // A labctl-built image is planned from its cache; plan never starts a build.
    if (!resolve_built_image(spec, ImageNeed::cached_only))
        log::info("image.build: the {} image is not built yet; 'labctl provision' (or 'labctl "
                  "image build') builds it first, then uploads it as the base volume",
                  spec.image.build->suite);
    if (!opts.offline)
        for (const auto& h : spec.hosts)
            log::info("reading libvirt at {}", h.libvirt.uri);
    provision::PlanOptions popts;
    popts.offline = opts.offline;
    const auto plans = provision::plan_lab(spec, popts);
    bool changes = false;
    for (const auto& [host, plan] : plans) {
        for (const auto& w : plan.warnings)
            log::warn("{}{}", spec.several_hosts() ? fmt::format("host '{}': ", host) : "", w);
        changes = changes || plan.has_changes();
    }
    if (!spec.several_hosts()) {
        // One host: the plan itself, as it always was.
        if (ctx.global.json())
            print_json(plan_json(plans.front().plan));
        else
            print(plan_table(plans.front().plan));
    } else if (ctx.global.json()) {
        nlohmann::json hosts = nlohmann::json::array();
        for (const auto& [host, plan] : plans) {
            auto j = plan_json(plan);
            j["host"] = host;
            hosts.push_back(std::move(j));
        }
        print_json({{"project", spec.project}, {"changes", changes}, {"hosts", hosts}});
    } else {
        std::string out;
        for (const auto& [host, plan] : plans)
            out += fmt::format("{}Host {} ({}):\n{}", out.empty() ? "" : "\n", host, plan.uri,
                               plan_table(plan));
        print(out);
    }
    return opts.detailed_exitcode && changes ? to_int(ExitCode::changes) : 0;
}

} // namespace

Runner register_plan(CLI::App& app, Context& ctx) {
    auto opts = std::make_shared<PlanOptions>();
    auto* sub = app.add_subcommand(
        "plan", "Compare lab.yaml with what exists in libvirt: create / keep / update / replace / "
                "delete");
    sub->add_flag("--detailed-exitcode", opts->detailed_exitcode,
                  "Exit 10 when there are changes, 0 when none");
    sub->add_flag("--offline", opts->offline,
                  "Do not contact libvirt: plan against an empty host (says so in a warning)");
    return [&ctx, opts]() -> int {
        return run_plan(ctx, *opts);
    };
}

} // namespace labctl::cli
