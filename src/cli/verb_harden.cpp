#include <fmt/format.h>
#include <fmt/ranges.h>

#include <set>

#include <labctl/core/duration.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/parallel.hpp>
#include <labctl/core/table.hpp>
#include <labctl/harden/apply.hpp>
#include <labctl/harden/facts.hpp>
#include <labctl/harden/plan.hpp>
#include <labctl/harden/record.hpp>
#include <labctl/remote/known_hosts.hpp>
#include <labctl/remote/session_pool.hpp>

#include "app.hpp"
#include "host_hardening.hpp"
#include "targets.hpp"

namespace labctl::cli {

namespace {
struct HardenOptions {
    HostOptions target;
    std::string profile;
    bool dry_run = false;
};
} // namespace

Runner register_harden(CLI::App& app, Context& ctx) {
    auto opts = std::make_shared<HardenOptions>();
    auto* sub = app.add_subcommand(
        "harden", "Harden SSH on the lab VMs (key-only, passwords locked) with automatic revert");
    opts->target.add_to(*sub, "Harden an existing host instead of the lab's VMs");
    sub->add_option("--profile", opts->profile, "Algorithm profile (default from lab.yaml: modern)")
        ->check(one_of({"modern", "compat"}))
        ->type_name("modern|compat");
    sub->add_flag("--dry-run", opts->dry_run,
                  "Print the sshd drop-in and the host parts' files (the firewall's ruleset "
                  "checkable with nft -c -f) that would be applied; change nothing");
    return [&ctx, opts]() -> int {
        const auto wait = opts->target.wait_duration();
        const auto spec = load_spec(ctx, opts->target.overrides(), true);
        const auto targets = resolve_targets(spec, opts->target.host);
        std::set<std::string> stack_names;
        for (const auto& t :
             stack_targets(spec, opts->target.host.empty() ? spec.deploy.host : opts->target.host))
            stack_names.insert(t.name);
        const bool from_flag = !opts->target.host.empty();

        // The hosts are independent: hardened at once, reported in the lab's order.
        struct Hardened {
            nlohmann::json json;
            std::vector<std::vector<std::string>> rows;
            std::string dry_run;
        };
        std::vector<Hardened> done(targets.size());
        parallel_for(targets.size(), targets.size(), [&](std::size_t i) {
            const auto& target = targets[i];
            auto options = connect_options(spec, target);
            log::info("harden {}: connecting to {}", target.name, options.endpoint.to_string());
            // Provision's login when `up` runs the stages (a new one costs seconds under TCG).
            auto lease = remote::lease_session(options, wait);
            auto& session = *lease;
            harden::HardenInput input;
            input.user = options.endpoint.user;
            input.allow_users = spec.hardening.allow_users;
            if (std::find(input.allow_users.begin(), input.allow_users.end(), input.user) ==
                input.allow_users.end())
                input.allow_users.push_back(input.user); // --host with another user
            input.profile = opts->profile.empty() ? spec.hardening.profile : opts->profile;
            input.client_kex = remote::client_algorithms("kex");
            input.client_ciphers = remote::client_algorithms("cipher");
            input.client_macs = remote::client_algorithms("mac");
            input.client_hostkeys = remote::client_algorithms("hostkey");
            for (const auto& k : remote::find_known_hosts(
                     spec.ssh.known_hosts, options.endpoint.host, options.endpoint.port))
                input.pinned_hostkey_types.push_back(k.key_type);
            input.lock_accounts = {input.user, "root"};
            // The facts the last completed run kept, checked in one cheap probe; when they do
            // not prove the host unchanged, the full probe finds everything again.
            if (opts->dry_run) {
                const auto facts = harden::probe_facts(session, input.lock_accounts);
                const auto plan = harden::plan(input, facts);
                done[i].dry_run = fmt::format(
                    "# ===== {} ({})\n## sshd: {} ({})\n### {}\n{}{}\n", target.name,
                    options.endpoint.to_string(), plan.dropin_path,
                    plan.changes() ? "would change" : "up to date", plan.dropin_path, plan.dropin,
                    plan.accounts_to_lock.empty()
                        ? std::string()
                        : fmt::format("## passwords to lock: {}\n",
                                      fmt::join(plan.accounts_to_lock, " ")));
                done[i].rows.push_back(
                    {target.name, "sshd",
                     plan.changes() ? "would change: " + plan.dropin_path : "up to date"});
                nlohmann::json host = nullptr;
                if (spec.hardening.host_parts()) {
                    auto h =
                        harden_host(spec, target, from_flag, stack_names.count(target.name) > 0,
                                    session, options, true);
                    done[i].dry_run += h.dry_run;
                    for (auto& row : h.rows)
                        done[i].rows.push_back({target.name, row[0], row[1]});
                    host = h.json;
                }
                done[i].json = {{"host", target.name},
                                {"address", options.endpoint.to_string()},
                                {"dry_run", true},
                                {"sshd",
                                 {{"changes", plan.changes()},
                                  {"path", plan.dropin_path},
                                  {"content", plan.dropin},
                                  {"passwords_to_lock", plan.accounts_to_lock}}},
                                {"host_parts", host}};
                return;
            }
            harden::HardenReport report;
            bool probed_in_full = true;
            if (auto cached = harden::probe_cached_facts(session, input.lock_accounts)) {
                const auto plan = harden::plan(input, *cached);
                report = harden::apply(
                    plan, *cached, session, options,
                    {.revert_after = spec.hardening.revert_after,
                     .policy = harden::policy_fingerprint(plan, input.user, input.lock_accounts),
                     .prove_only = true});
                if (!report.proven_by_record)
                    log::info("harden {}: probing in full: {}", target.name, report.drift);
            }
            probed_in_full = !report.proven_by_record;
            if (probed_in_full) {
                const auto facts = harden::probe_facts(session, input.lock_accounts);
                const auto plan = harden::plan(input, facts);
                report = harden::apply(
                    plan, facts, session, options,
                    {.revert_after = spec.hardening.revert_after,
                     .policy = harden::policy_fingerprint(plan, input.user, input.lock_accounts)});
            }
            nlohmann::json steps = nlohmann::json::array();
            for (const auto& s : report.steps) {
                done[i].rows.push_back({target.name, s.step, s.detail});
                steps.push_back({{"step", s.step}, {"detail", s.detail}});
            }
            // The host parts after sshd: their fresh-login proof uses the hardened sshd.
            nlohmann::json host = nullptr;
            if (spec.hardening.host_parts()) {
                auto h = harden_host(spec, target, from_flag, stack_names.count(target.name) > 0,
                                     session, options, false);
                for (auto& row : h.rows)
                    done[i].rows.push_back({target.name, row[0], row[1]});
                if (h.json.value("changed", false))
                    report.changed = true;
                host = h.json;
            }
            done[i].json =
                nlohmann::json{{"host", target.name},
                               {"address", options.endpoint.to_string()},
                               {"changed", report.changed},
                               {"converge",
                                {{"result", report.proven_by_record ? "unchanged" : "applied"},
                                 {"probe", probed_in_full ? "full" : "kept facts"},
                                 {"drift", report.drift}}},
                               {"profile", input.profile},
                               {"steps", steps},
                               {"host_parts", host}};
            log::info("harden {}: {}", target.name,
                      report.changed            ? "hardened"
                      : report.proven_by_record ? "already hardened, nothing changed (the record "
                                                  "matches)"
                                                : "already hardened, nothing changed");
        });
        nlohmann::json results = nlohmann::json::array();
        Table table({"HOST", "STEP", "DETAIL"});
        for (const auto& d : done) {
            results.push_back(d.json);
            for (const auto& row : d.rows)
                table.add(row);
        }
        if (ctx.global.json())
            print_json({{"hosts", results}});
        else if (opts->dry_run) {
            std::string text;
            for (const auto& d : done)
                text += d.dry_run;
            print(text);
        } else
            print(table.render());
        return 0;
    };
}

} // namespace labctl::cli
