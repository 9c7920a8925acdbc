#include <fmt/format.h>
#include <fmt/ranges.h>

#include <random>
#include <sstream>
#include <thread>

#include <labctl/core/duration.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/signals.hpp>
#include <labctl/core/text.hpp>
#include <labctl/core/version.hpp>
#include <labctl/harden/apply.hpp>
#include <labctl/harden/effective.hpp>
#include <labctl/harden/policy.hpp>
#include <labctl/harden/record.hpp>

#include "revert_timer.hpp"
#include "steps.hpp"

namespace labctl::harden {

namespace {

// Target-side file names, all beside the drop-in and none ending in .conf (so sshd never reads
// them).
struct Paths {
    std::string dropin, fresh, backup, absent, revert, pid;
    explicit Paths(const std::string& d)
        : dropin(d), fresh(d + ".labctl-new"), backup(d + ".labctl-backup"),
          absent(d + ".labctl-absent"), revert(d + ".labctl-revert.sh"),
          pid(d + ".labctl-revert.pid") {}
};

std::string restore_snippet(const Paths& p) {
    return fmt::format("if [ -f {absent} ]; then rm -f {dropin} {absent}; "
                       "elif [ -f {backup} ]; then mv -f {backup} {dropin}; fi",
                       fmt::arg("absent", shell_quote(p.absent)),
                       fmt::arg("dropin", shell_quote(p.dropin)),
                       fmt::arg("backup", shell_quote(p.backup)));
}

using Runner = detail::Steps;

// Effective values, read back from sshd itself: what the file says is not what counts. Returns
// sshd -T's output.
std::string check_effective(const std::string& host, const HardenPlan& plan,
                            const TargetFacts& facts, const std::string& user, Runner& run) {
    const auto out = run.sudo("sshd -T", effective_settings_command(facts, user));
    const auto wrong = effective_mismatches(plan, user, out);
    if (!wrong.empty())
        throw Error(ExitCode::harden,
                    fmt::format("sshd -T on {} shows {}", host, fmt::join(wrong, "; ")));
    run.done("sshd -T", fmt::format("{} settings as required", required_settings().size() + 5));
    return out;
}

remote::Session reconnect_with_retry(const remote::ConnectOptions& opts) {
    // sshd re-executes itself on SIGHUP; give it a moment before calling the login broken.
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (true) {
        try {
            return remote::Session::connect(opts);
        } catch (const remote::ConnectError& e) {
            // Not listening yet: retry until the deadline.
            if (std::chrono::steady_clock::now() >= until)
                throw Error(
                    ExitCode::harden,
                    fmt::format("a new key login after reloading sshd failed: {}", e.what()));
            std::this_thread::sleep_for(std::chrono::milliseconds(300));
        } catch (const Interrupted&) {
            throw; // Ctrl-C: reverted by the caller, exit 130
        } catch (const Error& e) {
            // Host key or authentication refused: the new configuration is wrong, at once.
            throw Error(ExitCode::harden,
                        fmt::format("a new key login after reloading sshd failed: {}", e.what()));
        }
    }
}

void wait_for_reload(remote::Session& session, const std::string& inode_cmd,
                     const std::string& before) {
    if (before.empty()) {
        std::this_thread::sleep_for(std::chrono::seconds(2)); // no ss: give sshd time to re-exec
        return;
    }
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (std::chrono::steady_clock::now() < until) {
        const auto now =
            session.exec(inode_cmd, {.timeout = std::chrono::seconds(30), .sudo = true}).out;
        if (!now.empty() && now != before)
            return;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    throw Error(ExitCode::harden, "sshd did not reopen its listening socket within 15s of the "
                                  "reload");
}

std::string random_password() {
    std::random_device rd;
    return fmt::format("labctl-probe-{:08x}{:08x}", rd(), rd());
}

std::string verify_login(const HardenPlan& plan, const TargetFacts& facts,
                         const remote::ConnectOptions& reconnect, const ApplyOptions& options,
                         const std::string& user, Runner& run) {
    auto fresh = reconnect_with_retry(reconnect);
    run.done("new session", fmt::format("key login as {} works ({} {})", user, fresh.facts().cipher,
                                        fresh.facts().mac));
    const auto facts_now = remote::Session::probe(reconnect);
    if (facts_now.auth_methods != std::vector<std::string>{"publickey"})
        throw Error(ExitCode::harden,
                    fmt::format("sshd still offers authentication methods '{}' (want publickey "
                                "only)",
                                fmt::join(facts_now.auth_methods, ",")));
    run.done("auth methods", "only publickey offered");
    const auto pw = options.probe_password.empty() ? random_password() : options.probe_password;
    if (remote::Session::password_accepted(reconnect, pw))
        throw Error(ExitCode::harden, "a password login was accepted after hardening");
    run.done("password refused", "a password attempt was refused");
    return check_effective(fresh.endpoint().host, plan, facts, user, run);
}

} // namespace

HardenReport apply(const HardenPlan& plan, const TargetFacts& facts, remote::Session& session,
                   const remote::ConnectOptions& reconnect, const ApplyOptions& options) {
    HardenReport report;
    Runner run(session, report);
    const Paths paths(plan.dropin_path);
    const std::string user = reconnect.endpoint.user;
    if (!options.policy.empty()) {
        report.drift = record_mismatch(facts, plan, options.policy);
        if (report.drift.empty()) {
            const auto record = record_from_text(facts.applied_record);
            run.done("record", fmt::format("drop-in, locked passwords and sshd -T match the "
                                           "hardening of {}",
                                           record->applied_at));
            report.proven_by_record = true;
            if (!facts.cached) {
                // Found in full, unchanged: the next run's cheap probe starts from these facts.
                try {
                    keep_facts(session, facts);
                } catch (const Error& e) {
                    if (e.code() == ExitCode::interrupted)
                        throw;
                    log::warn("harden {}: {}", session.endpoint().host, e.what());
                }
            }
            return report;
        }
        if (options.prove_only)
            return report;
        log::info("harden {}: applying and checking everything: {}", session.endpoint().host,
                  report.drift);
    }
    std::string effective; // sshd -T once the hardened configuration is live

    if (!plan.dropin_changes) {
        run.done("drop-in", fmt::format("{} already up to date", plan.dropin_path));
    } else {
        session.upload(paths.fresh, plan.dropin, 0644, true);
        run.done("upload", paths.fresh);
        const auto secs = options.revert_after.count();
        const detail::RevertTimer timer{"labctl-harden-revert", paths.revert, paths.pid,
                                        options.revert_after, facts.systemd};
        // sshd re-executes on reload and opens a new listening socket: its inode tells when the
        // new configuration is live, so the new-session check cannot reach the old process.
        // The listener bound to the address we came in on first: another sshd on the same port
        // (on another address) never reopens and must not be the one watched.
        const std::string src = facts.listen_address.find(':') != std::string::npos
                                    ? "[" + facts.listen_address + "]"
                                    : facts.listen_address;
        const std::string inode_cmd = fmt::format(
            "{{ {}ss -Htlne 'sport = :{}'; }} 2>/dev/null | grep -o 'ino:[0-9]*' | head -n1",
            src.empty()
                ? std::string()
                : fmt::format("ss -Htlne 'src {} and sport = :{}'; ", src, facts.listen_port),
            facts.listen_port);
        std::string inode_before;
        bool rejected = false;
        // From the swap on, every way out before the disarm (a failed step, a lost check, Ctrl-C)
        // puts the old configuration back and makes it live before labctl exits.
        try {
            // Swap in, then syntax-check the whole configuration. On failure put the old file
            // back: sshd was not reloaded, so nothing has changed.
            const auto check = session.exec(
                fmt::format(
                    "set -e; rm -f {absent}; if [ -f {dropin} ]; then cp -p {dropin} {backup}; "
                    "else rm -f {backup}; : > {absent}; fi; mv -f {fresh} {dropin}; "
                    "mkdir -p /run/sshd; if ! out=$({sshd} -t -f {main} 2>&1); then {restore}; "
                    "echo \"$out\" >&2; exit 3; fi",
                    fmt::arg("absent", shell_quote(paths.absent)),
                    fmt::arg("dropin", shell_quote(paths.dropin)),
                    fmt::arg("backup", shell_quote(paths.backup)),
                    fmt::arg("fresh", shell_quote(paths.fresh)),
                    fmt::arg("sshd", shell_quote(facts.sshd)),
                    fmt::arg("main", shell_quote(facts.main_config)),
                    fmt::arg("restore", restore_snippet(paths))),
                {.timeout = std::chrono::seconds(60), .sudo = true});
            if (!check.ok()) {
                rejected = true;
                throw Error(ExitCode::harden,
                            fmt::format("sshd -t rejected the new configuration; nothing was "
                                        "changed: {}",
                                        check.err),
                            "the target's OpenSSH may not know a setting; try hardening.profile: "
                            "compat");
            }
            run.done("sshd -t", "configuration accepted");

            // Arm the automatic revert before reloading: if this session dies from here on, the
            // target restores the old configuration by itself.
            session.upload(paths.revert,
                           timer.script_text(fmt::format("{}\n{}", restore_snippet(paths),
                                                         facts.reload_command())),
                           0700, true);
            run.sudo("arm revert", timer.arm_command());
            run.done("arm revert", fmt::format("restores the old configuration in {}s unless "
                                               "disarmed",
                                               secs));

            // Under systemd the socket may be inherited (socket activation) and keep its inode,
            // so there a short grace period stands in for the inode check.
            if (facts.listen_port > 0 && !facts.systemd)
                inode_before =
                    session.exec(inode_cmd, {.timeout = std::chrono::seconds(30), .sudo = true})
                        .out;
            run.sudo("reload sshd", facts.reload_command());
            wait_for_reload(session, inode_cmd, inode_before);
            run.done("reload sshd", facts.reload_command());
            if (options.fault == "after-reload")
                throw Error(ExitCode::harden, "injected fault: session lost after reload");
            effective = verify_login(plan, facts, reconnect, options, user, run);
        } catch (const Error& e) {
            if (rejected || options.fault == "after-reload")
                throw; // nothing to revert / the armed revert is what is being tested
            // Revert now, over the first session, which the new configuration never touched
            // (the commands after a Ctrl-C still run: only those running at the signal stop).
            log::warn("harden {}: {}: reverting", session.endpoint().host, e.what());
            try {
                const std::string inode_reverting =
                    facts.listen_port > 0 && !facts.systemd
                        ? session
                              .exec(inode_cmd, {.timeout = std::chrono::seconds(30), .sudo = true})
                              .out
                        : std::string();
                // What the revert script does, without it (the failure may come before it was
                // uploaded); reloading an sshd that never saw the new file is harmless.
                run.sudo("revert", fmt::format("{}; {}; {}", timer.disarm_command(),
                                               restore_snippet(paths), facts.reload_command()));
                // Return only once the restored configuration listens, so whoever acts on
                // exit 6 (a retry, a human with ssh) reaches the old sshd and not a closed port.
                try {
                    wait_for_reload(session, inode_cmd, inode_reverting);
                } catch (const Error& slow) {
                    log::warn("harden {}: the old configuration is restored but {}",
                              session.endpoint().host, slow.what());
                }
            } catch (const Error& revert_error) {
                log::error("harden: revert failed ({}); the armed timer will retry in {}s",
                           revert_error.what(), secs);
            }
            if (e.code() == ExitCode::interrupted)
                throw; // Ctrl-C: exit 130, after this cleanup
            throw Error(ExitCode::harden,
                        fmt::format("{} (the previous configuration was "
                                    "restored)",
                                    e.what()),
                        e.hint());
        }
        run.sudo("disarm revert",
                 fmt::format("{}; rm -f {} {}", timer.disarm_command(), shell_quote(paths.backup),
                             shell_quote(paths.absent)));
        run.done("disarm revert", "hardened configuration kept");
        report.changed = true;
    }
    if (!plan.dropin_changes)
        effective = verify_login(plan, facts, reconnect, options, user, run);

    for (const auto& account : plan.accounts_to_lock) {
        const auto out =
            run.sudo("passwd -l", fmt::format("passwd -l {0} >/dev/null && passwd -S {0}",
                                              shell_quote(account)));
        std::istringstream words(out);
        std::string name, state;
        words >> name >> state;
        if (state != "L")
            throw Error(
                ExitCode::harden,
                fmt::format("passwd -S {} says '{}' after passwd -l (want L)", account, state));
        // With UsePAM no, sshd treats a locked password as a locked account and refuses keys
        // too: prove the key login still works, or undo the lock.
        if (account == user) {
            try {
                remote::Session::connect(reconnect);
            } catch (const Error& e) {
                run.sudo("passwd -u", fmt::format("passwd -u {}", shell_quote(account)));
                if (e.code() == ExitCode::interrupted)
                    throw; // Ctrl-C before the login was proven: the lock is undone, exit 130
                throw Error(ExitCode::harden,
                            fmt::format("locking the password of {} blocks key logins on this "
                                        "host ({}); the lock was undone",
                                        account, e.what()),
                            "enable UsePAM in sshd_config, or keep the password unusable "
                            "another way");
            }
        }
        run.done("passwd -l", account + " locked");
        report.changed = true;
    }
    if (!options.policy.empty()) {
        // Only a completed run is recorded; without the record the next run checks everything.
        const HardenRecord record{std::string(labctl::version()), options.policy,
                                  effective_fingerprint(effective), utc_now("%Y-%m-%dT%H:%M:%SZ")};
        try {
            session.upload(facts.record_path(), to_text(record), 0600, true);
            if (!facts.cached)
                keep_facts(session, facts); // the next run's cheap probe starts from these
            run.done("record", facts.record_path());
        } catch (const Error& e) {
            if (e.code() == ExitCode::interrupted)
                throw;
            log::warn("harden {}: hardened, but the record could not be written ({}); the next "
                      "run checks everything again",
                      session.endpoint().host, e.what());
        }
    }
    return report;
}

} // namespace labctl::harden
