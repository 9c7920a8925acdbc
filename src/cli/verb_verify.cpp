#include <fmt/format.h>
#include <fmt/ranges.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include <labctl/core/duration.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/file.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/signals.hpp>
#include <labctl/deploy/compose.hpp>
#include <labctl/deploy/stack_env.hpp>
#include <labctl/harden/policy.hpp>
#include <labctl/remote/session_pool.hpp>
#include <labctl/report/report.hpp>
#include <labctl/verify/verify.hpp>

#include "app.hpp"
#include "host_hardening.hpp"
#include "lab_verify.hpp"
#include "targets.hpp"

namespace labctl::cli {

namespace {
struct VerifyOptions {
    std::string host;
    std::vector<std::string> only;
    std::vector<std::string> skip;
    std::string deadline;
    std::string junit;
    unsigned parallel = 0;
    bool ssh_audit = false;
    bool lynis = false;
};

std::vector<std::string> select_checks(const config::LabSpec& spec, const VerifyOptions& opts) {
    std::vector<std::string> out;
    for (const auto& c : config::known_checks()) {
        const bool wanted =
            opts.only.empty() ? std::find(spec.verify.checks.begin(), spec.verify.checks.end(),
                                          c) != spec.verify.checks.end()
                              : std::find(opts.only.begin(), opts.only.end(), c) != opts.only.end();
        if (wanted && std::find(opts.skip.begin(), opts.skip.end(), c) == opts.skip.end())
            out.push_back(c);
    }
    return out;
}

/// Fails before the checks run when the JUnit report could not be written (a directory that
/// cannot be created or written), so a typo does not cost a whole verify run.
void check_report_path(const std::string& path) {
    const auto parent = std::filesystem::absolute(path).parent_path();
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec || ::access(parent.c_str(), W_OK) != 0 || std::filesystem::is_directory(path))
        throw usage_error(fmt::format("--junit {}: cannot write a report there ({})", path,
                                      ec ? ec.message()
                                      : std::filesystem::is_directory(path)
                                          ? std::string("it is a directory")
                                          : std::strerror(errno)),
                          "name a file in a directory you can write");
}

/// Writes the JUnit report after the results are printed: a failure names the path (exit 2) and
/// the results are not lost.
void write_report(const std::string& path, const std::string& content) {
    try {
        write_file_atomic(path, content);
    } catch (const Error& e) {
        throw usage_error(fmt::format("--junit {}: the report was not written: {}", path, e.what()),
                          "the results are above; name a file in a directory you can write");
    }
}
} // namespace

namespace {

/// The services the selected checks talk to (an unforwarded one among them deserves a warning).
std::vector<std::string> services_needed(const verify::Options& v) {
    static const std::map<std::string, std::vector<std::string>> k_uses{
        {"prometheus.targets", {"prometheus"}},
        {"prometheus.sli", {"prometheus", "nginx"}},
        {"trace.e2e", {"nginx", "tempo"}},
        {"logs.correlated", {"nginx", "loki"}},
        {"grafana.provisioned", {"grafana", "prometheus"}},
        {"nginx.resilience", {"nginx"}},
    };
    std::vector<std::string> out;
    const auto add = [&](const std::string& s) {
        if (std::find(out.begin(), out.end(), s) == out.end())
            out.push_back(s);
    };
    for (const auto& check : v.checks) {
        if (check == "stack.health")
            for (const auto& s : v.services)
                add(s);
        if (const auto it = k_uses.find(check); it != k_uses.end())
            for (const auto& s : it->second)
                add(s);
    }
    return out;
}

} // namespace

namespace {

/// verify on one target: its checks (in parallel), with its endpoints (forwarded through the jump
/// host when it is behind one). Ctrl-C throws.
report::HostReport verify_target(const config::LabSpec& spec, const Target& target, bool from_flag,
                                 const VerifyOptions& opts,
                                 std::optional<std::chrono::milliseconds> deadline) {
    verify::Options v;
    v.host = target.endpoint.host;
    v.checks = select_checks(spec, opts);
    if (!spec.verify.services.empty())
        v.services = spec.verify.services;
    if (!spec.verify.prometheus_jobs.empty())
        v.expected_jobs = spec.verify.prometheus_jobs;
    v.deadline = deadline ? *deadline : spec.verify.deadline;
    if (!deadline)
        for (const auto& [name, d] : spec.verify.check_deadlines)
            v.deadlines[name] = d;
    v.endpoints = verify::default_endpoints(v.host);
    // mode user: the services answer on 127.0.0.1 at their forwarded host ports.
    if (!from_flag)
        for (const auto& [name, url] : vm_endpoints(spec, target.name, services_needed(v)))
            v.endpoints[name] = url;
    // Behind the jump host: each service through a local forward, open for the whole run.
    const auto forwards = open_forwards(spec, target, services_needed(v));
    for (const auto& [name, url] : forwards.endpoints())
        v.endpoints[name] = url;
    for (const auto& [name, url] : spec.verify.endpoints) {
        const auto& known = verify::endpoint_names();
        if (std::find(known.begin(), known.end(), name) == known.end())
            log::warn("verify.endpoints.{} is not used: endpoints are {}", name,
                      fmt::join(known, ", "));
        v.endpoints[name] = url;
    }
    v.parallel = opts.parallel;
    // Grafana's datasource settings need more than an anonymous Viewer: sign in as the admin
    // with the password labctl generated for this lab (when it has one; never printed).
    if (auto password = deploy::read_secret(deploy::grafana_password_file(spec.state_dir()))) {
        const auto pins = deploy::pin_set_file(spec);
        const auto vars =
            pins.empty() ? std::map<std::string, std::string>{} : deploy::read_env_file(pins);
        const auto user = vars.find("GRAFANA_ADMIN_USER");
        v.grafana_user = user != vars.end() ? user->second : "admin";
        v.grafana_password = *password;
    }
    const bool want_ssh =
        std::find(v.checks.begin(), v.checks.end(), "ssh.hardened") != v.checks.end() ||
        std::find(v.checks.begin(), v.checks.end(), "nginx.resilience") != v.checks.end();
    if (want_ssh && std::filesystem::exists(spec.ssh.private_key)) {
        const auto connect = connect_options(spec, target);
        v.ssh.connect = connect;
        v.ssh.expected = harden::required_settings();
        v.ssh.audit = opts.ssh_audit;
        const auto remote_dir = spec.deploy.remote_dir;
        const auto project = spec.deploy.project;
        // compose interpolates the whole file for `restart` too: it needs the lab's variables.
        const auto env = deploy::stack_compose_env(spec, false);
        v.restart_backend = [connect, remote_dir, project, env]() -> std::string {
            try {
                auto lease = remote::lease_session(connect, connect.connect_timeout);
                auto& session = *lease;
                const bool sudo = !session.is_root();
                const auto facts = deploy::detect_compose(session, sudo);
                const auto cmd = deploy::compose_command(facts.command(), remote_dir, project, env,
                                                         "restart backend");
                remote::ExecOptions exec;
                exec.sudo = sudo;
                exec.timeout = std::chrono::minutes(3);
                exec.stdin_data = cmd.stdin_data;
                const auto r = session.exec(cmd.command, exec);
                return r.ok() ? std::string() : fmt::format("exit {}: {}", r.exit_status, r.err);
            } catch (const std::exception& e) {
                return e.what();
            }
        };
    } else if (want_ssh) {
        log::info("verify: no SSH key at {}: ssh.hardened and nginx.resilience are skipped",
                  spec.ssh.private_key);
    }
    if (std::find(v.checks.begin(), v.checks.end(), "host.hardened") != v.checks.end() &&
        spec.hardening.host_parts() && std::filesystem::exists(spec.ssh.private_key)) {
        const auto connect = connect_options(spec, target);
        v.host_hardened = [&spec, connect, lynis = opts.lynis](std::chrono::milliseconds budget) {
            return check_host_hardened(spec, connect, lynis, budget);
        };
    }
    v.on_start = [](const std::string& name) {
        log::debug("verify: {} started", name);
    };
    v.on_result = [](const verify::CheckResult& r) {
        log::info("verify: {} {} in {}: {}", r.name, verify::to_string(r.status),
                  format_duration(r.duration), r.message);
    };

    log::info("verify {}: {} check{} ({} each unless set per check)", target.name, v.checks.size(),
              v.checks.size() == 1 ? "" : "s", format_duration(v.deadline));
    const auto t0 = std::chrono::steady_clock::now();
    auto results = verify::run_checks(v);
    signals::check(); // Ctrl-C during the checks: exit 130, no report of half-run checks
    forwards.annotate(results);
    forwards.warn_failures();
    const auto wall = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - t0);
    const auto summary = report::summarize(results, wall);
    return {target.name, std::move(results), summary};
}

} // namespace

bool LabVerify::ok() const {
    return std::all_of(runs.begin(), runs.end(),
                       [](const report::HostReport& r) { return r.summary.ok(); });
}

nlohmann::json LabVerify::json() const {
    if (runs.size() == 1)
        return report::to_json(runs.front().host, runs.front().results, runs.front().summary);
    nlohmann::json hosts = nlohmann::json::array();
    for (const auto& r : runs)
        hosts.push_back(report::to_json(r.host, r.results, r.summary));
    return {{"schema", 1}, {"ok", ok()}, {"hosts", hosts}};
}

std::string LabVerify::text() const {
    if (runs.size() == 1)
        return report::human(runs.front().results, runs.front().summary);
    std::string text;
    for (const auto& r : runs)
        text += fmt::format("{}== {}\n{}", text.empty() ? "" : "\n", r.host,
                            report::human(r.results, r.summary));
    return text;
}

LabVerify verify_lab(const config::LabSpec& spec) {
    LabVerify out;
    for (const auto& target : stack_targets(spec, spec.deploy.host))
        out.runs.push_back(verify_target(spec, target, !spec.deploy.host.empty(), {}, {}));
    return out;
}

std::string failing_checks(const config::LabSpec& spec, const Target& target, bool from_flag,
                           const std::vector<std::string>& checks,
                           std::chrono::milliseconds deadline) {
    VerifyOptions opts;
    for (const auto& c : checks)
        if (std::find(spec.verify.checks.begin(), spec.verify.checks.end(), c) !=
            spec.verify.checks.end())
            opts.only.push_back(c);
    if (opts.only.empty())
        return {};
    const auto run = verify_target(spec, target, from_flag, opts, deadline);
    std::string failed;
    for (const auto& r : run.results)
        if (r.status == verify::Status::fail)
            failed += fmt::format("{}{}: {}", failed.empty() ? "" : "; ", r.name, r.message);
    return failed;
}

Runner register_verify(CLI::App& app, Context& ctx) {
    auto opts = std::make_shared<VerifyOptions>();
    auto* sub = app.add_subcommand(
        "verify", "Prove the telemetry chain end to end: targets, traces, logs, dashboards");
    const auto& checks = config::known_checks();
    sub->add_option("--host", opts->host, "Verify an existing host (no libvirt needed)")
        ->type_name("[USER@]HOST[:PORT]");
    sub->add_option("--only", opts->only,
                    fmt::format("Run only this check (repeatable): {}", fmt::join(checks, ", ")))
        ->check(one_of(checks))
        ->type_name("CHECK");
    sub->add_option("--skip", opts->skip, "Skip this check (repeatable)")
        ->check(one_of(checks))
        ->type_name("CHECK");
    sub->add_option("--deadline", opts->deadline, "Deadline per check, e.g. 90s or 3m")
        ->type_name("DURATION");
    sub->add_option("--junit", opts->junit, "Write a JUnit XML report to FILE")->type_name("FILE");
    sub->add_option("--parallel", opts->parallel,
                    "Run at most N checks at once (default: all at once)")
        ->type_name("N");
    sub->add_flag("--lynis", opts->lynis,
                  "host.hardened also runs Lynis (Debian package lynis) on the host and reports "
                  "its hardening index; give it time with --deadline");
    sub->add_flag("--ssh-audit", opts->ssh_audit,
                  "ssh.hardened also runs ssh-audit against the host: any [fail] fails the check");
    return [&ctx, opts]() -> int {
        std::optional<std::chrono::milliseconds> deadline;
        if (!opts->deadline.empty()) {
            deadline = parse_duration(opts->deadline);
            if (!deadline || deadline->count() <= 0)
                throw usage_error(fmt::format("--deadline '{}' is not a duration", opts->deadline),
                                  "use e.g. 90s, 3m");
        }
        config::Overrides overrides;
        if (!opts->host.empty())
            overrides.host = opts->host;
        const auto spec = load_spec(ctx, overrides, false);
        const std::string junit = ctx.up.active ? ctx.up.junit : opts->junit;
        if (!junit.empty())
            check_report_path(junit);
        const std::string host_flag = !opts->host.empty() ? opts->host : spec.deploy.host;
        // --host: that host; else every VM that runs the stack (deploy.role), one after the other.
        const std::vector<Target> targets = stack_targets(spec, host_flag);
        LabVerify lab;
        for (const auto& target : targets)
            lab.runs.push_back(verify_target(spec, target, !host_flag.empty(), *opts, deadline));
        const bool ok = lab.ok();
        if (ctx.global.json())
            print_json(lab.json());
        else
            print(lab.text());
        if (!junit.empty()) {
            write_report(junit, report::to_junit(lab.runs));
            log::info("verify: JUnit report written to {}", junit);
        }
        return ok ? 0 : to_int(ExitCode::verify);
    };
}

} // namespace labctl::cli
