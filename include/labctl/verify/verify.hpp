#pragma once
// Runs the checks of DESIGN §5 against a stack: in parallel, each with its own deadline, polling
// with jitter, recording evidence. Endpoints default to the stack's ports on one host and can be
// overridden per service (lab.yaml verify.endpoints).

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <labctl/remote/session.hpp>
#include <labctl/verify/check.hpp>

namespace labctl::verify {

/// Service names for endpoints: nginx, api, grafana, prometheus, tempo, loki, collector.
const std::vector<std::string>& endpoint_names();

/// http://<host>:<port> per service (STACK.md §1); "api" is reached through nginx (/api).
/// An IPv6 literal host is bracketed.
std::map<std::string, std::string> default_endpoints(const std::string& host);

struct SshSettings {
    std::optional<remote::ConnectOptions> connect; ///< unset: ssh.hardened is skipped
    /// `sshd -T` keyword (lowercase) -> expected value.
    std::vector<std::pair<std::string, std::string>> expected;
    std::string sshd = "sshd"; ///< the sshd binary on the host
    std::string sshd_config;   ///< passed with -f when set (tests run their own sshd)
    bool sudo = true;          ///< run sshd -T through sudo unless the user is root
    /// Also run the local `ssh-audit` against the host's SSH port: any "[fail]" fails the check.
    bool audit = false;
};

/// What host.hardened found: the host parts as lab.yaml wants them, or what differs.
struct HostFinding {
    bool ok = false;
    std::string message;
    std::vector<Evidence> evidence;
};

struct Options {
    std::string host = "127.0.0.1";
    std::vector<std::string> checks; ///< in report order
    std::chrono::milliseconds deadline{180'000};
    std::map<std::string, std::chrono::milliseconds> deadlines; ///< per check, wins over deadline
    std::map<std::string, std::string> endpoints;               ///< complete after defaults
    std::chrono::milliseconds poll_interval{1000};              ///< ±25 % jitter
    unsigned parallel = 0;                                      ///< 0: all checks at once
    /// stack.health probes these services (a lab without Grafana/Tempo/Loki lists fewer).
    std::vector<std::string> services{"collector",  "api",   "nginx", "grafana",
                                      "prometheus", "tempo", "loki"};
    /// prometheus.targets wants every one of these scrape jobs up.
    std::vector<std::string> expected_jobs{"prometheus", "otel-collector", "task-api",
                                           "tempo",      "loki",           "grafana"};
    std::vector<std::string> dashboards{"sli-slo-dashboard", "end-to-end-tracing"};
    std::vector<std::string> datasources{"prometheus", "tempo", "loki"};
    std::string service_name = "task-api";
    /// Grafana basic-auth credentials for grafana.provisioned (empty user: anonymous). An
    /// anonymous Viewer lacks `datasources:read` (GET /api/datasources/uid/<uid> answers 403), so
    /// with credentials the datasources are also read by uid; the password never appears in
    /// evidence.
    std::string grafana_user;
    std::string grafana_password;
    std::string trace_id; ///< empty: a random id per active check (tests fix it)
    SshSettings ssh;
    /// nginx.resilience: restarts the backend (e.g. `docker compose restart backend` over SSH);
    /// returns an error text, empty on success. Unset: the check is skipped.
    std::function<std::string()> restart_backend;
    /// host.hardened: probes the host's firewall, fail2ban, auditd and kernel settings against
    /// lab.yaml (and runs Lynis when asked) within the time given. Unset: the check is skipped.
    std::function<HostFinding(std::chrono::milliseconds budget)> host_hardened;
    /// Called (from the checking thread) when a check starts and when it ends.
    std::function<void(const std::string& name)> on_start;
    std::function<void(const CheckResult& result)> on_result;
};

/// The deadline that applies to `check`.
std::chrono::milliseconds deadline_for(const Options& options, const std::string& check);

/// Runs options.checks; results in the order of options.checks. Never throws for a failed check.
std::vector<CheckResult> run_checks(const Options& options);

/// One check by name (unknown names give a failed result).
CheckResult run_check(const Options& options, const std::string& name);

/// The SLI expressions of the SLI/SLO dashboard (STACK.md §4) that prometheus.sli evaluates.
const std::vector<std::string>& sli_queries();

} // namespace labctl::verify
