// nginx.resilience (opt-in: it restarts the backend), ssh.hardened (over the pinned session) and
// host.hardened (the firewall, fail2ban, auditd and kernel settings, probed by the caller).

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <sstream>
#include <thread>

#include <labctl/core/duration.hpp>
#include <labctl/core/process.hpp>
#include <labctl/core/text.hpp>
#include <labctl/remote/session_pool.hpp>

#include "context.hpp"

namespace labctl::verify::detail {

CheckResult nginx_resilience(CheckContext& c) {
    if (!c.options().restart_backend)
        return c.finish(Status::skip, "needs SSH access to the host to restart the backend");
    const auto url = c.endpoint("nginx") + "/api/tasks";
    const auto start = Clock::now();
    // The restart runs beside bounded traffic: one request every 100 ms until the deadline or
    // until 3 s of normal service after the restart finished.
    auto restart = std::async(std::launch::async, c.options().restart_backend);
    std::optional<std::string> restart_error;
    std::optional<Clock::time_point> restarted, first_bad, last_bad;
    int requests = 0, errors = 0;
    std::map<int, int> statuses;
    Clock::time_point good_since = start;
    HttpResponse last;
    for (int i = 0; i < 100'000 && !c.expired(); ++i) {
        if (!restarted &&
            restart.wait_for(std::chrono::milliseconds(0)) == std::future_status::ready) {
            restart_error = restart.get();
            restarted = Clock::now();
            if (!restart_error->empty())
                break;
        }
        HttpRequest req;
        req.url = url;
        req.timeout = std::chrono::milliseconds(2000);
        req.timeout = std::min(req.timeout, c.remaining());
        last = http_request(req);
        ++requests;
        ++statuses[last.status];
        const auto now = Clock::now();
        if (last.status != 200) {
            ++errors;
            if (!first_bad)
                first_bad = now;
            last_bad = now;
            good_since = now;
        } else if (restarted &&
                   now - std::max(good_since, *restarted) > std::chrono::milliseconds(3000)) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    c.record("GET " + url, last, fmt::format("{} requests", requests));
    std::string counts;
    for (const auto& [status, n] : statuses)
        counts += fmt::format("{}{}x{}", counts.empty() ? "" : " ", n,
                              status == 0 ? std::string("no-answer") : std::to_string(status));
    c.result().evidence.back().note += ": " + counts;
    if (!restarted) {
        // The deadline came first; do not leave the restart running unobserved.
        restart.wait();
        return c.finish(Status::fail, "the backend restart did not finish before the deadline");
    }
    if (!restart_error->empty())
        return c.finish(Status::fail, "restarting the backend failed: " + *restart_error);
    const auto window =
        first_bad ? std::chrono::duration_cast<std::chrono::milliseconds>(*last_bad - *first_bad)
                  : std::chrono::milliseconds(0);
    const bool recovered = last.status == 200;
    const auto msg = fmt::format("{} of {} requests failed during the restart (window {}); {}",
                                 errors, requests, format_duration(window),
                                 recovered ? "normal service after" : "no normal service after");
    return c.finish(recovered ? Status::pass : Status::fail, msg);
}

CheckResult ssh_hardened(CheckContext& c) {
    const auto& ssh = c.options().ssh;
    if (!ssh.connect)
        return c.finish(Status::skip,
                        "no SSH settings for the host (needs the lab's key, ssh.private_key)");
    auto options = *ssh.connect;
    options.connect_timeout = std::min(options.connect_timeout, c.remaining());
    options.io_timeout = std::min(options.io_timeout, c.remaining());
    const std::string where = options.endpoint.to_string();

    // The offered methods come from a fresh handshake (they must show today's sshd, not the one
    // a kept login met); sshd -T runs meanwhile on the login the earlier stages used.
    auto probing =
        std::async(std::launch::async, [options] { return remote::Session::probe(options); });
    auto lease = remote::lease_session(options, options.connect_timeout);
    auto& session = *lease;
    remote::ExecOptions exec;
    exec.sudo = ssh.sudo && !session.is_root();
    exec.timeout = std::max(c.remaining(), std::chrono::milliseconds(1));
    // -C gives the connection context sshd needs to evaluate Match blocks.
    std::string command = shell_quote(ssh.sshd) + " -T";
    if (!ssh.sshd_config.empty())
        command += " -f " + shell_quote(ssh.sshd_config);
    command += " -C " + shell_quote(fmt::format("user={},host=localhost,addr=127.0.0.1",
                                                options.endpoint.user));
    const auto r = session.exec(command, exec);
    const auto facts = probing.get();
    const std::string methods = fmt::format("{}", fmt::join(facts.auth_methods, ","));
    Evidence offered;
    offered.url = "ssh " + where;
    offered.note = "authentication methods offered: " + methods;
    c.result().evidence.push_back(offered);
    for (const auto& m : facts.auth_methods)
        if (m == "password" || m == "keyboard-interactive")
            return c.finish(Status::fail, fmt::format("{} offers {} authentication", where, m));
    Evidence e;
    e.url = "ssh " + where + " " + command;
    e.status = r.exit_status;
    e.excerpt = excerpt(r.ok() ? r.out : r.err);
    c.result().evidence.push_back(e);
    if (!r.ok())
        return c.finish(Status::fail,
                        fmt::format("sshd -T failed (exit {}): {}", r.exit_status, excerpt(r.err)));
    std::map<std::string, std::string> effective;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
        const auto sp = line.find(' ');
        if (sp == std::string::npos)
            continue;
        // Repeated keywords (allowusers, hostkey) are printed once per value.
        const auto key = line.substr(0, sp);
        auto& value = effective[key];
        value += (value.empty() ? "" : " ") + line.substr(sp + 1);
    }
    std::vector<std::string> wrong;
    for (const auto& [key, value] : ssh.expected) {
        const auto it = effective.find(key);
        const auto got = it == effective.end() ? std::string("(not set)") : it->second;
        if (got != value)
            wrong.push_back(fmt::format("{} is '{}', expected '{}'", key, got, value));
    }
    if (!wrong.empty()) {
        std::string msg;
        for (const auto& w : wrong)
            msg += (msg.empty() ? "" : "; ") + w;
        return c.finish(Status::fail, msg);
    }
    std::string audit_note;
    if (ssh.audit) {
        // Optional policy: ssh-audit from this host against the same (pinned) endpoint.
        if (!find_program("ssh-audit"))
            return c.finish(Status::fail, "ssh-audit was requested but is not installed here");
        const auto a = run_process(
            {"ssh-audit", "-n", "-p", std::to_string(options.endpoint.port), options.endpoint.host},
            {.timeout = std::max(c.remaining(), std::chrono::milliseconds(1))});
        Evidence ae;
        ae.url = fmt::format("ssh-audit -n -p {} {}", options.endpoint.port, options.endpoint.host);
        ae.status = a.exit_code;
        std::vector<std::string> failures;
        std::size_t warnings = 0;
        std::istringstream lines(a.out);
        for (std::string line; std::getline(lines, line);) {
            if (line.find("[fail]") != std::string::npos)
                failures.push_back(line);
            warnings += line.find("[warn]") != std::string::npos;
        }
        ae.excerpt =
            excerpt(failures.empty() ? a.out : fmt::format("{}", fmt::join(failures, "\n")));
        c.result().evidence.push_back(ae);
        // The verdict is ssh-audit's exit status (ssh_audit/exitcodes.py, the same in 2.5 and
        // 3.x): 0 good, 2 warnings only (also for algorithms it does not know, such as OpenSSH's
        // kex-strict markers), 3 failures, 1 connection error. Its text only feeds the message.
        // (Its JSON output, -j, lists the algorithms without their verdicts in Debian 12's 2.5.)
        constexpr int k_audit_good = 0, k_audit_warning = 2, k_audit_failure = 3;
        if (a.timed_out || (a.exit_code != k_audit_good && a.exit_code != k_audit_warning &&
                            a.exit_code != k_audit_failure))
            return c.finish(Status::fail, fmt::format("ssh-audit could not audit {} (exit {})",
                                                      where, a.exit_code));
        if (a.exit_code == k_audit_failure)
            return c.finish(Status::fail,
                            failures.empty()
                                ? std::string("ssh-audit reports failures (exit 3)")
                                : fmt::format("ssh-audit reports {} failure{}: {}", failures.size(),
                                              failures.size() == 1 ? "" : "s", failures.front()));
        audit_note = fmt::format("; ssh-audit: no failures, {} warnings", warnings);
    }
    return c.finish(Status::pass,
                    fmt::format("{} sshd settings as expected; only {} authentication offered{}",
                                ssh.expected.size(), methods, audit_note));
}

CheckResult host_hardened(CheckContext& c) {
    if (!c.options().host_hardened)
        return c.finish(Status::skip, "no host parts to check (lab.yaml turns them all off, or "
                                      "there is no SSH key)");
    auto finding = c.options().host_hardened(std::max(c.remaining(), std::chrono::milliseconds(1)));
    for (auto& e : finding.evidence)
        c.result().evidence.push_back(std::move(e));
    return c.finish(finding.ok ? Status::pass : Status::fail, finding.message);
}

} // namespace labctl::verify::detail
