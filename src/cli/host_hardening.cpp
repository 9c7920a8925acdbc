#include "host_hardening.hpp"

#include <fmt/format.h>

#include <algorithm>

#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/text.hpp>
#include <labctl/deploy/compose.hpp>
#include <labctl/deploy/compose_ports.hpp>
#include <labctl/deploy/stack_env.hpp>
#include <labctl/harden/host_apply.hpp>
#include <labctl/verify/verify.hpp>

#include "lab_verify.hpp"

namespace labctl::cli {

namespace {

/// Whether compose project `project` has containers on the target.
bool stack_running(remote::Session& session, const std::string& project, bool sudo) {
    const auto r = session.exec(
        fmt::format("docker ps -q --filter label=com.docker.compose.project={} 2>/dev/null | "
                    "head -n1",
                    shell_quote(project)),
        {.timeout = std::chrono::seconds(30), .sudo = sudo});
    return r.ok() && !trim(r.out).empty();
}

/// The ports the stack publishes: from the running stack's `compose config` when it runs there,
/// else the stack's service ports (STACK.md §1, as verify reaches them).
std::vector<harden::FirewallPort> stack_ports(const config::LabSpec& spec, remote::Session& session,
                                              bool running, bool sudo) {
    std::vector<harden::FirewallPort> out;
    if (running) {
        const auto facts = deploy::detect_compose(session, sudo);
        const auto env = deploy::stack_compose_env(spec, false);
        const auto cmd = deploy::compose_command(facts.command(), spec.deploy.remote_dir,
                                                 spec.deploy.project, env, "config");
        // `config` prints secrets: parsed, never logged.
        const auto r = session.exec(
            cmd.command,
            {.timeout = std::chrono::seconds(120), .stdin_data = cmd.stdin_data, .sudo = sudo});
        if (!r.ok())
            throw Error(ExitCode::harden,
                        fmt::format("'{} config' failed on {}: {}", facts.command(),
                                    session.endpoint().host, trim(r.err)),
                        "the firewall opens the ports the stack publishes; fix the compose file "
                        "or turn hardening.firewall off");
        const auto ports = deploy::parse_compose_ports(r.out);
        for (const auto& skipped : ports.skipped)
            log::info("harden {}: firewall: {}", session.endpoint().host, skipped);
        for (const auto& p : ports.published)
            out.push_back({p.protocol, p.first, p.last, "compose: " + p.service});
        return out;
    }
    for (const auto& [name, url] : verify::default_endpoints("h")) {
        const auto colon = url.rfind(':');
        if (const auto port = parse_u64(url.substr(colon + 1)))
            out.push_back({"tcp", static_cast<int>(*port), 0, "stack: " + name});
    }
    return out;
}

} // namespace

HostHardening harden_host(const config::LabSpec& spec, const Target& target, bool from_flag,
                          bool stack_target, remote::Session& session,
                          const remote::ConnectOptions& reconnect, bool dry_run) {
    HostHardening out;
    const auto& h = spec.hardening;
    const auto facts = harden::probe_host_facts(session);
    const bool sudo = !session.is_root();
    const bool running =
        stack_target && facts.docker && stack_running(session, spec.deploy.project, sudo);

    harden::HostPolicy policy;
    policy.firewall = h.firewall.enabled;
    policy.fail2ban = h.fail2ban;
    policy.auditd = h.auditd;
    policy.sysctl = h.sysctl;
    policy.ssh_port = facts.listen_port > 0 ? facts.listen_port : spec.ssh.port;
    policy.ssh_sources = h.firewall.ssh_sources;
    if (h.firewall.enabled && stack_target)
        policy.open_ports = stack_ports(spec, session, running, sudo);
    for (const auto& a : h.firewall.allow)
        policy.open_ports.push_back({a.protocol, a.first, a.last, "hardening.firewall.allow"});
    // The same port from compose and from allow: once.
    std::vector<harden::FirewallPort> unique;
    for (const auto& p : policy.open_ports)
        if (std::none_of(unique.begin(), unique.end(), [&](const harden::FirewallPort& u) {
                return u.protocol == p.protocol && u.first == p.first && u.last == p.last;
            }))
            unique.push_back(p);
    policy.open_ports = unique;
    const auto plan = harden::plan_host(policy, facts);

    nlohmann::json parts = nlohmann::json::array();
    for (const auto& part : plan.parts) {
        nlohmann::json files = nlohmann::json::array();
        for (const auto& f : part.files)
            files.push_back({{"path", f.path}, {"content", f.content}});
        parts.push_back({{"name", part.name},
                         {"changes", part.changes},
                         {"summary", part.summary},
                         {"packages_missing", part.missing},
                         {"notes", part.notes},
                         {"files", files},
                         {"activate", part.activate},
                         {"check", part.check}});
    }
    out.json = {{"parts", parts}, {"changed", false}, {"judged_by_stack", running}};
    if (dry_run) {
        for (const auto& part : plan.parts) {
            out.dry_run += fmt::format("## {}: {} ({})\n", part.name, part.summary,
                                       part.changes ? "would change" : "up to date");
            if (!part.missing.empty())
                out.dry_run +=
                    fmt::format("## packages to install: {}\n", fmt::join(part.missing, " "));
            for (const auto& note : part.notes)
                out.dry_run += fmt::format("## note: {}\n", note);
            for (const auto& f : part.files)
                out.dry_run += fmt::format("### {} (mode {:o})\n{}", f.path, f.mode, f.content);
            out.dry_run += fmt::format("### then, as root: {}\n### proven by: {}\n\n",
                                       part.activate, part.check);
            out.rows.push_back({part.name, part.changes ? "would change: " + part.summary
                                                        : "up to date: " + part.summary});
        }
        return out;
    }

    harden::HostApplyOptions options;
    options.revert_after = h.revert_after;
    if (running) {
        options.judge = [&spec, &target, from_flag](const std::string& part) {
            log::info("harden {}: {}: judging by stack.health and prometheus.targets", target.name,
                      part);
            return failing_checks(spec, target, from_flag, {"stack.health", "prometheus.targets"},
                                  std::chrono::seconds(60));
        };
    }
    const auto report = harden::apply_host(plan, session, reconnect, facts.systemd, options);
    for (const auto& s : report.steps)
        out.rows.push_back({s.step, s.detail});
    out.json["changed"] = report.changed;
    nlohmann::json steps = nlohmann::json::array();
    for (const auto& s : report.steps)
        steps.push_back({{"step", s.step}, {"detail", s.detail}});
    out.json["steps"] = steps;
    return out;
}

} // namespace labctl::cli
