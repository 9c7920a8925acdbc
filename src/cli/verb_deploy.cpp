#include <fmt/format.h>

#include <labctl/core/duration.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/parallel.hpp>
#include <labctl/core/table.hpp>
#include <labctl/deploy/compose.hpp>
#include <labctl/deploy/preload.hpp>
#include <labctl/deploy/stack_env.hpp>
#include <labctl/deploy/sync.hpp>

#include "app.hpp"
#include "targets.hpp"

namespace labctl::cli {

namespace {
struct DeployOptions {
    HostOptions target;
    bool dry_run = false;
};

struct Deployed {
    nlohmann::json json;
    std::string text;
};

/// Syncs and brings the stack up on one target (or only shows what rsync would change).
Deployed deploy_to(const config::LabSpec& spec, const Target& target, const DeployOptions& opts,
                   std::chrono::milliseconds wait, const std::string& ssh_config) {
    const bool sudo = target.endpoint.user != "root";

    deploy::SyncOptions sync_opts;
    sync_opts.local_dir = spec.deploy.stack_dir;
    sync_opts.remote_dir = spec.deploy.remote_dir;
    sync_opts.ssh_config = ssh_config;
    sync_opts.host_alias = target.alias();
    sync_opts.sudo = sudo;
    sync_opts.dry_run = opts.dry_run;
    // rsync goes through the system ssh, which needs the host to answer first.
    auto session = remote::wait_for_session(connect_options(spec, target), wait);
    log::info("deploy {}: syncing {} to {}", target.name, sync_opts.local_dir,
              sync_opts.remote_dir);
    const auto synced = deploy::sync(sync_opts);
    log::info("deploy {}: {} file{} sent, {} bytes, {} changes ({})", target.name,
              synced.files_transferred, synced.files_transferred == 1 ? "" : "s", synced.bytes_sent,
              synced.changes.size(), format_duration(synced.elapsed));

    nlohmann::json j{{"host", target.name},
                     {"dry_run", opts.dry_run},
                     {"sync",
                      {{"files_transferred", synced.files_transferred},
                       {"bytes_sent", synced.bytes_sent},
                       {"changes", synced.changes},
                       {"seconds", static_cast<double>(synced.elapsed.count()) / 1000.0}}}};
    if (opts.dry_run) {
        std::string text =
            fmt::format("rsync would change {} path{} on {}:{}\n", synced.changes.size(),
                        synced.changes.size() == 1 ? "" : "s", target.name, spec.deploy.remote_dir);
        for (const auto& c : synced.changes)
            text += "  " + c + "\n";
        return {j, text};
    }

    const auto facts = deploy::detect_compose(session, sudo);
    log::info("deploy {}: {} {}", target.name, facts.command(), facts.version);
    deploy::ComposeOptions compose;
    compose.remote_dir = spec.deploy.remote_dir;
    compose.project = spec.deploy.project;
    compose.wait_timeout = spec.deploy.wait_timeout;
    compose.reports_dir = spec.state_dir() + "/reports";
    compose.log_prefix = target.name + " | ";
    compose.sudo = sudo;
    // The pin set, the registry prefix and the generated secrets (Grafana's password).
    compose.env = deploy::stack_compose_env(spec, true);
    // Images first: an air-gapped target cannot pull what `up` needs.
    deploy::PreloadOptions preload;
    preload.images = spec.deploy.preload_images;
    preload.remote_dir = compose.remote_dir;
    preload.project = compose.project;
    preload.env = compose.env;
    preload.log_prefix = compose.log_prefix;
    preload.sudo = sudo;
    preload.load_timeout = spec.deploy.preload_timeout;
    const auto preloaded = deploy::preload_images(session, facts, preload);
    nlohmann::json preload_json = nlohmann::json::array();
    for (const auto& img : preloaded.images)
        preload_json.push_back(
            {{"image", img.image}, {"id", img.id}, {"action", deploy::to_string(img.action)}});
    j["preload"] = {{"images", preload_json},
                    {"bytes_sent", preloaded.bytes_sent},
                    {"seconds", static_cast<double>(preloaded.elapsed.count()) / 1000.0}};

    const auto report = deploy::compose_up(session, facts, compose);
    deploy::apply_grafana_password(session, facts, compose, report.services);

    nlohmann::json services = nlohmann::json::array();
    Table table({"SERVICE", "STATE", "HEALTH"});
    for (const auto& s : report.services) {
        services.push_back({{"service", s.service}, {"state", s.state}, {"health", s.health}});
        table.add({s.service, s.state, s.health.empty() ? "-" : s.health});
    }
    j["compose"] = {{"flavor", facts.command()},
                    {"version", facts.version},
                    {"project", compose.project},
                    {"services", services},
                    {"seconds", static_cast<double>(report.elapsed.count()) / 1000.0}};
    std::size_t sent = 0, present = 0;
    for (const auto& img : preloaded.images) {
        sent += img.action == deploy::PreloadAction::sent ? 1 : 0;
        present += img.action == deploy::PreloadAction::present ? 1 : 0;
    }
    const std::string images_line =
        preloaded.images.empty() ? std::string()
                                 : fmt::format("images: {} sent, {} already present ({} bytes); ",
                                               sent, present, preloaded.bytes_sent);
    return {j, fmt::format("{}\nsync: {} files sent, {} bytes; {}compose project '{}' up in "
                           "{}\n",
                           table.render(), synced.files_transferred, synced.bytes_sent, images_line,
                           compose.project, format_duration(report.elapsed))};
}

} // namespace

Runner register_deploy(CLI::App& app, Context& ctx) {
    auto opts = std::make_shared<DeployOptions>();
    auto* sub = app.add_subcommand(
        "deploy", "Sync the stack with rsync and run 'docker compose up -d --build --wait'");
    opts->target.add_to(*sub, "Deploy to an existing host (no libvirt needed)");
    sub->add_flag("--dry-run", opts->dry_run, "Show what rsync would change; change nothing");
    return [&ctx, opts]() -> int {
        const auto wait = opts->target.wait_duration();
        const auto spec = load_spec(ctx, opts->target.overrides(), true);
        // --host (or LAB_HOST / deploy.host) deploys to an existing host; else the VMs that
        // run the stack (deploy.role, or deploy.target_vm), all at once.
        const std::string host = !opts->target.host.empty() ? opts->target.host : spec.deploy.host;
        const std::vector<Target> targets = stack_targets(spec, host);
        // One ssh_config for them all: written once, before the parallel syncs read it.
        const auto ssh_config = write_ssh_config(spec, targets);
        std::vector<Deployed> done(targets.size());
        parallel_for(targets.size(), targets.size(), [&](std::size_t i) {
            done[i] = deploy_to(spec, targets[i], *opts, wait, ssh_config);
        });
        if (ctx.global.json()) {
            if (done.size() == 1) {
                print_json(done.front().json);
            } else {
                nlohmann::json list = nlohmann::json::array();
                for (const auto& d : done)
                    list.push_back(d.json);
                print_json({{"targets", list}});
            }
        } else {
            std::string text;
            for (std::size_t i = 0; i < done.size(); ++i)
                text += done.size() == 1 ? done[i].text
                                         : fmt::format("{}== {}\n{}", i == 0 ? "" : "\n",
                                                       targets[i].name, done[i].text);
            print(text);
        }
        return 0;
    };
}

} // namespace labctl::cli
