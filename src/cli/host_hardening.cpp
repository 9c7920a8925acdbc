#include "host_hardening.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>

#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/text.hpp>
#include <labctl/deploy/compose.hpp>
#include <labctl/deploy/compose_ports.hpp>
#include <labctl/deploy/stack_env.hpp>
#include <labctl/harden/host_apply.hpp>
#include <labctl/remote/session_pool.hpp>
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

/// The ports the stack publishes: the stack's service ports (STACK.md §1, as verify reaches
/// them), and when it runs there, what its `compose config` publishes. Both, so that the set does
/// not change between the first harden (before deploy) and later runs when the stack publishes
/// the service ports, as the bundled stacks do.
std::vector<harden::FirewallPort> stack_ports(const config::LabSpec& spec, remote::Session& session,
                                              bool running, bool sudo) {
    std::vector<harden::FirewallPort> out;
    for (const auto& [name, url] : verify::default_endpoints("h")) {
        const auto colon = url.rfind(':');
        if (const auto port = parse_u64(url.substr(colon + 1)))
            out.push_back({"tcp", static_cast<int>(*port), 0, "stack: " + name});
    }
    if (!running)
        return out;
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
        log::debug("harden {}: firewall: {}", session.endpoint().host, skipped);
    for (const auto& p : ports.published) // host_setup drops those already listed
        out.push_back({p.protocol, p.first, p.last, "compose: " + p.service});
    return out;
}

/// One line of at most 200 characters.
std::string excerpt_line(std::string_view text) {
    std::string out;
    for (const char c : text)
        out += c == '\n' ? ' ' : c;
    return out.size() > 200 ? out.substr(0, 197) + "..." : out;
}

} // namespace

const std::vector<std::string>& lynis_skipped_tests() {
    // Measured on this project's build machine (Lynis 3.0.8, its own log's timestamps): these
    // took 36 of its 57 s (certificate expiry scan, the apt security-update simulation, debsums'
    // binaries, the dpkg query, the kernel package count, service manager detection), about
    // 17 times that under TCG, and the hardening index was 57 with and without them.
    static const std::vector<std::string> k{"BOOT-5104", "CRYP-7902", "DEB-0001",
                                            "PKGS-7345", "PKGS-7392", "PKGS-7410"};
    return k;
}

HostSetup host_setup(const config::LabSpec& spec, remote::Session& session, bool stack_target) {
    HostSetup out;
    const auto& h = spec.hardening;
    out.facts = harden::probe_host_facts(session);
    const auto& facts = out.facts;
    const bool sudo = !session.is_root();
    out.running = stack_target && facts.docker && stack_running(session, spec.deploy.project, sudo);

    auto& policy = out.policy;
    policy.firewall = h.firewall.enabled;
    policy.fail2ban = h.fail2ban;
    policy.auditd = h.auditd;
    policy.sysctl = h.sysctl;
    policy.ssh_port = facts.listen_port > 0 ? facts.listen_port : spec.ssh.port;
    policy.ssh_sources = h.firewall.ssh_sources;
    if (h.firewall.enabled && stack_target)
        policy.open_ports = stack_ports(spec, session, out.running, sudo);
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
    return out;
}

HostHardening harden_host(const config::LabSpec& spec, const Target& target, bool from_flag,
                          bool stack_target, remote::Session& session,
                          const remote::ConnectOptions& reconnect, bool dry_run) {
    HostHardening out;
    const auto setup = host_setup(spec, session, stack_target);
    const auto& facts = setup.facts;
    const bool running = setup.running;
    const auto& h = spec.hardening;
    const auto plan = harden::plan_host(setup.policy, facts);

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

std::string refresh_firewall(const config::LabSpec& spec, const Target& target,
                             remote::Session& session, const remote::ConnectOptions& reconnect) {
    if (!spec.hardening.firewall.enabled)
        return {};
    // One cheap look first: without labctl's firewall here (harden has not run, or not with the
    // firewall) deploy does not start one.
    const auto applied =
        session.exec(fmt::format("test -s {}/firewall.applied", harden::k_host_state_dir),
                     {.timeout = std::chrono::seconds(30), .sudo = !session.is_root()});
    if (!applied.ok())
        return {};
    auto setup = host_setup(spec, session, true);
    setup.policy.fail2ban = setup.policy.auditd = setup.policy.sysctl = false;
    const auto plan = harden::plan_host(setup.policy, setup.facts);
    if (!plan.changes())
        return {};
    harden::HostApplyOptions options;
    options.revert_after = spec.hardening.revert_after;
    const bool from_flag = target.lab_host.empty();
    options.judge = [&spec, &target, from_flag](const std::string&) {
        return failing_checks(spec, target, from_flag, {"stack.health", "prometheus.targets"},
                              std::chrono::seconds(60));
    };
    harden::apply_host(plan, session, reconnect, setup.facts.systemd, options);
    return "the firewall now opens what the stack publishes: " + plan.parts.front().summary;
}

verify::HostFinding check_host_hardened(const config::LabSpec& spec,
                                        const remote::ConnectOptions& connect, bool lynis,
                                        std::chrono::milliseconds budget) {
    verify::HostFinding out;
    const auto started = std::chrono::steady_clock::now();
    const auto left = [&] {
        return std::max(std::chrono::duration_cast<std::chrono::seconds>(
                            budget - (std::chrono::steady_clock::now() - started)),
                        std::chrono::seconds(1));
    };
    try {
        auto lease = remote::lease_session(connect, std::min(connect.connect_timeout, budget));
        auto& session = *lease;
        const std::string where = "ssh " + session.endpoint().to_string();
        const auto setup = host_setup(spec, session, true);
        const auto plan = harden::plan_host(setup.policy, setup.facts);
        std::vector<std::string> wrong, fine;
        for (const auto& part : plan.parts) {
            verify::Evidence e;
            e.url = fmt::format("{}: {} ({})", where, part.name, part.check);
            const auto r = session.exec(part.check, {.timeout = left(), .sudo = true});
            e.status = r.exit_status;
            e.note = part.summary;
            e.excerpt = trim(r.err.empty() ? r.out : r.err);
            out.evidence.push_back(e);
            if (!part.missing.empty())
                wrong.push_back(fmt::format("{}: packages missing: {}", part.name,
                                            fmt::join(part.missing, " ")));
            else if (!r.ok())
                wrong.push_back(
                    fmt::format("{}: not live (its check exits {})", part.name, r.exit_status));
            else if (part.changes)
                wrong.push_back(fmt::format("{}: differs from lab.yaml (labctl harden applies "
                                            "it)",
                                            part.name));
            else
                fine.push_back(part.name);
        }
        std::string lynis_note;
        if (lynis) {
            // Lynis's own report file carries the index; its console output is kept only to
            // say why when there is none. The profile skips the tests that take most of its
            // time under emulation and score no hardening (lynis_skipped_tests).
            std::string profile;
            for (const auto& t : lynis_skipped_tests())
                profile += "skip-test=" + t + "\\n";
            const auto r = session.exec(
                "sh -c " +
                    shell_quote(fmt::format(
                        "command -v lynis >/dev/null || exit 127; d=$(mktemp -d); printf '{}' > "
                        "\"$d/labctl.prf\"; lynis audit system --quick --no-colors --no-log "
                        "--profile \"$d/labctl.prf\" --report-file \"$d/report.dat\" > "
                        "\"$d/out\" 2>&1; rc=$?; grep -E '^hardening_index=' \"$d/report.dat\" "
                        "|| {{ echo \"lynis exit $rc:\"; tail -n 5 \"$d/out\"; }}; rm -rf \"$d\"",
                        profile)),
                {.timeout = left(), .sudo = true});
            verify::Evidence e;
            e.url = where + ": lynis audit system --quick";
            e.status = r.exit_status;
            e.excerpt = trim(r.out);
            out.evidence.push_back(e);
            const auto eq =
                r.out.rfind("hardening_index=", 0) == 0 ? r.out.find('=') : std::string::npos;
            const auto index =
                eq == std::string::npos ? std::nullopt : parse_u64(trim(r.out.substr(eq + 1)));
            if (r.exit_status == 127)
                wrong.push_back("lynis is not installed on the host (Debian package lynis)");
            else if (!index)
                wrong.push_back(fmt::format("Lynis gave no hardening index{}: {}",
                                            r.timed_out ? " (timed out)" : "",
                                            excerpt_line(trim(r.out + r.err))));
            else
                lynis_note = fmt::format("Lynis hardening index {}", *index);
        }
        if (!lynis_note.empty())
            out.evidence.back().note = lynis_note;
        out.ok = wrong.empty();
        // The index is reported either way: before hardening it is the baseline.
        out.message = out.ok
                          ? fmt::format("{} as lab.yaml wants them and live", fmt::join(fine, ", "))
                          : fmt::format("{}", fmt::join(wrong, "; "));
        if (!lynis_note.empty())
            out.message += "; " + lynis_note;
    } catch (const Interrupted&) {
        throw;
    } catch (const std::exception& e) {
        out.ok = false;
        out.message = e.what();
    }
    return out;
}

} // namespace labctl::cli
