#include <fmt/format.h>

#include <labctl/core/duration.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/parallel.hpp>
#include <labctl/core/table.hpp>
#include <labctl/core/version.hpp>
#include <labctl/deploy/compose.hpp>
#include <labctl/deploy/converge.hpp>
#include <labctl/deploy/mounts.hpp>
#include <labctl/deploy/preload.hpp>
#include <labctl/deploy/stack_env.hpp>
#include <labctl/deploy/sync.hpp>
#include <labctl/deploy/tree.hpp>
#include <labctl/remote/session_pool.hpp>

#include "app.hpp"
#include "host_hardening.hpp"
#include "targets.hpp"

namespace labctl::cli {

namespace {
struct DeployOptions {
    HostOptions target;
    bool dry_run = false;
    bool force = false;
};

struct Deployed {
    nlohmann::json json;
    std::string text;
};

double seconds(std::chrono::milliseconds d) {
    return static_cast<double>(d.count()) / 1000.0;
}

/// Today's inputs of a deploy to `remote_dir`; the preloaded images' local ids where their list
/// is known without asking the target (explicit, or "auto" as the record resolved it for the
/// same compose inputs).
deploy::DeployInputs local_inputs(const config::LabSpec& spec, const deploy::ComposeEnv& env,
                                  const std::vector<std::string>& excludes,
                                  const deploy::TargetObservation& seen) {
    deploy::DeployInputs in;
    in.labctl_version = std::string(labctl::version());
    in.project = spec.deploy.project;
    in.remote_dir = spec.deploy.remote_dir;
    in.tree = deploy::local_tree_fingerprint(spec.deploy.stack_dir, excludes);
    in.env = deploy::env_fingerprint(env);
    in.compose_inputs = deploy::compose_inputs_fingerprint(spec.deploy.stack_dir, env);
    const auto& images = spec.deploy.preload_images;
    const bool automatic = images.size() == 1 && images.front() == "auto";
    std::vector<std::string> names = images;
    if (automatic)
        names = seen.record && seen.record->inputs.compose_inputs == in.compose_inputs
                    ? seen.record->auto_images
                    : std::vector<std::string>{};
    for (const auto& image : names)
        in.images[image] = deploy::local_image_id(image);
    return in;
}

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
    auto lease = remote::lease_session(connect_options(spec, target), wait);
    auto& session = *lease;
    // A dry run creates no secret: one that does not exist yet is drift.
    const auto env = deploy::stack_compose_env(spec, !opts.dry_run);

    // The converge check: one round trip shows whether the target still is what the last
    // deploy left and this machine's inputs are the same; then there is nothing to do.
    const auto check_started = std::chrono::steady_clock::now();
    const auto seen = deploy::observe(session, spec.deploy.remote_dir, spec.deploy.project,
                                      sync_opts.excludes, sudo);
    const auto inputs = local_inputs(spec, env, sync_opts.excludes, seen);
    auto drift = deploy::drift(seen, inputs);
    const auto& preload_list = spec.deploy.preload_images;
    const bool automatic = preload_list.size() == 1 && preload_list.front() == "auto";
    if (automatic && seen.record && inputs.compose_inputs != seen.record->inputs.compose_inputs &&
        drift.empty())
        drift.push_back("the compose inputs changed"); // "auto" must be resolved again
    const auto check_elapsed = since(check_started);
    nlohmann::json converge{{"drift", drift}, {"check_seconds", seconds(check_elapsed)}};
    if (drift.empty() && !opts.force && !opts.dry_run) {
        converge["result"] = "unchanged";
        log::info("deploy {}: up to date: the target matches the deploy of {} (checked in {})",
                  target.name, seen.record->applied_at, format_duration(check_elapsed));
        nlohmann::json services = nlohmann::json::array();
        Table table({"SERVICE", "STATE", "HEALTH"});
        for (const auto& c : seen.containers) {
            services.push_back({{"service", c.service}, {"state", c.state}, {"health", c.health}});
            table.add({c.service, c.state, c.health.empty() ? "-" : c.health});
        }
        nlohmann::json j{
            {"host", target.name},
            {"dry_run", false},
            {"converge", converge},
            {"sync",
             {{"files_transferred", 0},
              {"bytes_sent", 0},
              {"changes", nlohmann::json::array()},
              {"skipped", true},
              {"seconds", 0.0}}},
            {"compose",
             {{"flavor", seen.record->compose_flavor == "v2" ? "docker compose" : "docker-compose"},
              {"version", seen.record->compose_version},
              {"project", spec.deploy.project},
              {"services", services},
              {"skipped", true},
              {"seconds", 0.0}}}};
        return {j, fmt::format("{}\nup to date: the target matches the deploy of {}; nothing "
                               "synced or restarted (checked in {})\n",
                               table.render(), seen.record->applied_at,
                               format_duration(check_elapsed))};
    }
    converge["result"] = opts.dry_run ? "dry-run" : "applied";
    // Only files of the stack changed here, and no image is built from it: syncing them and
    // restarting the services that mount one is the whole repair (compose's inputs and the images
    // are the record's, so `up` and the preload would find nothing to do; under TCG they cost
    // 10 s and more).
    const bool files_only = !opts.force && !opts.dry_run &&
                            deploy::only_stack_files_changed(seen, inputs) &&
                            !deploy::compose_builds_images(spec.deploy.stack_dir);
    converge["mode"] = files_only ? "files" : "full";
    if (!drift.empty())
        log::info("deploy {}: {}: {}", target.name, opts.dry_run ? "would deploy" : "deploying",
                  fmt::join(drift, "; "));
    else if (opts.force)
        log::info("deploy {}: no drift; deploying anyway (--force)", target.name);

    log::info("deploy {}: syncing {} to {}", target.name, sync_opts.local_dir,
              sync_opts.remote_dir);
    const auto synced = deploy::sync(sync_opts);
    log::info("deploy {}: {} file{} sent, {} bytes, {} changes ({})", target.name,
              synced.files_transferred, synced.files_transferred == 1 ? "" : "s", synced.bytes_sent,
              synced.changes.size(), format_duration(synced.elapsed));

    nlohmann::json j{{"host", target.name},
                     {"dry_run", opts.dry_run},
                     {"converge", converge},
                     {"sync",
                      {{"files_transferred", synced.files_transferred},
                       {"bytes_sent", synced.bytes_sent},
                       {"changes", synced.changes},
                       {"seconds", seconds(synced.elapsed)}}}};
    if (opts.dry_run) {
        std::string text;
        for (const auto& d : drift)
            text += "drift: " + d + "\n";
        text +=
            fmt::format("rsync would change {} path{} on {}:{}\n", synced.changes.size(),
                        synced.changes.size() == 1 ? "" : "s", target.name, spec.deploy.remote_dir);
        for (const auto& c : synced.changes)
            text += "  " + c + "\n";
        return {j, text};
    }

    // The sync's changes as target paths: a container that mounts one still reads the old inode.
    const auto changed = deploy::changed_paths(synced.changes, spec.deploy.remote_dir);
    // docker-compose (v1, Python) says its version slowly (seconds under TCG): while v1 is what
    // the check found and the record names, the record's version stands.
    deploy::ComposeFacts facts;
    if (files_only)
        facts = {seen.record->compose_flavor == "v2" ? deploy::ComposeFlavor::v2
                                                     : deploy::ComposeFlavor::v1,
                 seen.record->compose_version};
    else if (!seen.compose_v2 && seen.compose_v1 && seen.record &&
             seen.record->compose_flavor == "v1" && !seen.record->compose_version.empty())
        facts = {deploy::ComposeFlavor::v1, seen.record->compose_version};
    else
        facts = deploy::detect_compose(session, sudo);
    log::info("deploy {}: {} {}", target.name, facts.command(), facts.version);
    deploy::ComposeOptions compose;
    compose.remote_dir = spec.deploy.remote_dir;
    compose.project = spec.deploy.project;
    compose.wait_timeout = spec.deploy.wait_timeout;
    compose.reports_dir = spec.state_dir() + "/reports";
    compose.log_prefix = target.name + " | ";
    compose.sudo = sudo;
    // The pin set, the registry prefix and the generated secrets (Grafana's password).
    compose.env = env;
    // Images first: an air-gapped target cannot pull what `up` needs.
    deploy::PreloadOptions preload;
    preload.images = spec.deploy.preload_images;
    preload.remote_dir = compose.remote_dir;
    preload.project = compose.project;
    preload.env = compose.env;
    preload.log_prefix = compose.log_prefix;
    preload.sudo = sudo;
    preload.load_timeout = spec.deploy.preload_timeout;
    preload.work_dir = spec.state_dir();
    if (automatic && seen.record && seen.record->inputs.compose_inputs == inputs.compose_inputs)
        preload.auto_resolved = seen.record->auto_images;
    deploy::PreloadReport preloaded;
    deploy::DeployReport report;
    std::vector<std::string> restarted;
    std::vector<std::string> reloaded;
    // The services among `states` started before the sync that mount a changed file: reloaded
    // by their labctl.reload signal where that suffices, else restarted.
    auto refresh_stale = [&](const std::vector<deploy::ServiceState>& states,
                             deploy::DeployReport& into) {
        std::vector<deploy::ServiceState> reload, restart;
        for (const auto& s : deploy::services_mounting(states, changed))
            if (std::any_of(seen.containers.begin(), seen.containers.end(),
                            [&](const deploy::ServiceState& c) {
                                return c.container_id == s.container_id;
                            }))
                (deploy::reload_suffices(s, changed) ? reload : restart).push_back(s);
        auto take = [&](const deploy::DeployReport& again) {
            into.services = again.services;
            into.elapsed += again.elapsed;
        };
        if (!reload.empty())
            take(deploy::signal_services(session, facts, compose, reload));
        if (!restart.empty())
            take(deploy::restart_services(session, facts, compose, restart));
        for (const auto& s : reload)
            reloaded.push_back(s.service);
        for (const auto& s : restart)
            restarted.push_back(s.service);
    };
    if (files_only) {
        log::info("deploy {}: only stack files changed: no compose up, no preload", target.name);
        report.services = seen.containers;
        refresh_stale(seen.containers, report);
    } else {
        preloaded = deploy::preload_images(session, facts, preload);
        report = deploy::compose_up(session, facts, compose);
        refresh_stale(report.services, report);
        deploy::apply_grafana_password(session, facts, compose, report.services);
        // New published ports: labctl's firewall (when harden put it here) opens them.
        const auto opened = refresh_firewall(spec, target, session, connect_options(spec, target));
        if (!opened.empty())
            log::info("deploy {}: {}", target.name, opened);
    }
    nlohmann::json preload_json = nlohmann::json::array();
    for (const auto& img : preloaded.images)
        preload_json.push_back(
            {{"image", img.image}, {"id", img.id}, {"action", deploy::to_string(img.action)}});
    j["preload"] = {{"images", preload_json},
                    {"bytes_sent", preloaded.bytes_sent},
                    {"bytes_skipped", preloaded.bytes_skipped},
                    {"skipped", files_only},
                    {"seconds", static_cast<double>(preloaded.elapsed.count()) / 1000.0}};

    // What was applied and what the target looks like now (the containers as the health check
    // last saw them): the next deploy's proof.
    deploy::DeployRecord record;
    record.inputs = inputs;
    record.inputs.images.clear();
    for (const auto& img : preloaded.images) {
        record.inputs.images[img.image] = img.id;
        if (automatic)
            record.auto_images.push_back(img.image);
    }
    if (files_only) { // the images are the record's (the check proved them unchanged here)
        record.inputs.images = seen.record->inputs.images;
        record.auto_images = seen.record->auto_images;
    }
    record.compose_flavor = facts.flavor == deploy::ComposeFlavor::v2 ? "v2" : "v1";
    record.compose_version = facts.version;
    record.services = report.services;
    record.applied_at = utc_now("%Y-%m-%dT%H:%M:%SZ");
    deploy::write_record(session, spec.deploy.remote_dir, record, sync_opts.excludes, sudo);

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
                    {"skipped", files_only},
                    {"restarted", restarted},
                    {"reloaded", reloaded},
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
    std::string restarted_line;
    if (!reloaded.empty())
        restarted_line += fmt::format("; reloaded {} (its labctl.reload signal: a file under a "
                                      "directory it mounts changed)",
                                      fmt::join(reloaded, ", "));
    if (!restarted.empty())
        restarted_line +=
            fmt::format("; restarted {} (a file it mounts changed)", fmt::join(restarted, ", "));
    if (files_only)
        return {j, fmt::format("{}\nsync: {} files sent, {} bytes; only stack files changed, so no "
                               "compose up{}\n",
                               table.render(), synced.files_transferred, synced.bytes_sent,
                               restarted_line.empty() ? "; no service mounts a changed file"
                                                      : restarted_line)};
    return {j, fmt::format("{}\nsync: {} files sent, {} bytes; {}compose project '{}' up in "
                           "{}{}\n",
                           table.render(), synced.files_transferred, synced.bytes_sent, images_line,
                           compose.project, format_duration(report.elapsed), restarted_line)};
}

} // namespace

Runner register_deploy(CLI::App& app, Context& ctx) {
    auto opts = std::make_shared<DeployOptions>();
    auto* sub = app.add_subcommand(
        "deploy", "Sync the stack with rsync and run 'docker compose up -d --build --wait'");
    opts->target.add_to(*sub, "Deploy to an existing host (no libvirt needed)");
    sub->add_flag("--dry-run", opts->dry_run,
                  "Show the drift and what rsync would change; change nothing");
    sub->add_flag("--force", opts->force,
                  "Run the full deploy even when the target matches the last one");
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
