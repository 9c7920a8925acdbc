#include <fmt/format.h>
#include <fmt/ranges.h>

#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/signals.hpp>
#include <labctl/core/text.hpp>
#include <labctl/harden/facts.hpp>
#include <labctl/harden/host_apply.hpp>

#include "revert_timer.hpp"
#include "steps.hpp"

namespace labctl::harden {

namespace {

const std::string k_state = k_host_state_dir;

/// Target-side names of one part's transaction, all in labctl's state directory (root, 0700),
/// so no configuration directory ever reads a backup or a half-written file.
struct PartFiles {
    const HostPart& part;
    std::string base(std::size_t i) const { return fmt::format("{}/{}.{}", k_state, part.name, i); }
    std::string fresh(std::size_t i) const { return base(i) + ".new"; }
    std::string backup(std::size_t i) const { return base(i) + ".backup"; }
    std::string absent(std::size_t i) const { return base(i) + ".absent"; }
    std::string script() const { return fmt::format("{}/{}.revert.sh", k_state, part.name); }
    std::string pid() const { return fmt::format("{}/{}.revert.pid", k_state, part.name); }
};

std::string dir_of(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

/// Saves the live state, then keeps a copy of each file the part replaces (or notes it absent).
std::string backup_command(const PartFiles& pf) {
    std::string s = pf.part.save;
    for (std::size_t i = 0; i < pf.part.files.size(); ++i) {
        const auto p = shell_quote(pf.part.files[i].path);
        s += fmt::format(" && if [ -f {0} ]; then cp -p {0} {1} && rm -f {2}; else rm -f {1} && "
                         ": > {2}; fi",
                         p, shell_quote(pf.backup(i)), shell_quote(pf.absent(i)));
    }
    return s;
}

std::string swap_in_command(const PartFiles& pf) {
    std::string s = "set -e";
    for (std::size_t i = 0; i < pf.part.files.size(); ++i) {
        const auto& f = pf.part.files[i];
        s += fmt::format("; mkdir -p {}; mv -f {} {}", shell_quote(dir_of(f.path)),
                         shell_quote(pf.fresh(i)), shell_quote(f.path));
    }
    return s;
}

/// Puts the old files back, makes them live, and removes the transaction's files.
std::string revert_body(const PartFiles& pf) {
    std::string s;
    for (std::size_t i = 0; i < pf.part.files.size(); ++i) {
        const auto p = shell_quote(pf.part.files[i].path);
        s += fmt::format("if [ -f {1} ]; then mv -f {1} {0}; elif [ -f {2} ]; then rm -f {0} {2}; "
                         "fi\n",
                         p, shell_quote(pf.backup(i)), shell_quote(pf.absent(i)));
    }
    s += pf.part.restore + "\n";
    for (std::size_t i = 0; i < pf.part.files.size(); ++i)
        s += fmt::format("rm -f {}\n", shell_quote(pf.fresh(i)));
    return s;
}

std::string cleanup_command(const PartFiles& pf) {
    std::string s = "rm -f";
    for (std::size_t i = 0; i < pf.part.files.size(); ++i)
        s += fmt::format(" {} {} {}", shell_quote(pf.backup(i)), shell_quote(pf.absent(i)),
                         shell_quote(pf.fresh(i)));
    return s;
}

using detail::Steps;

void install_packages(const HostPlan& plan, remote::Session& session, Steps& steps) {
    const auto missing = plan.missing_packages();
    if (missing.empty())
        return;
    const std::string list = fmt::format("{}", fmt::join(missing, " "));
    log::info("harden {}: installing {}", session.endpoint().host, list);
    // Bounded: a target without a reachable mirror fails in seconds, not at apt's own timeouts.
    const auto r = session.exec(
        fmt::format("sh -c {}",
                    shell_quote(fmt::format(
                        "export DEBIAN_FRONTEND=noninteractive; timeout 120 apt-get -qq -o "
                        "Acquire::Retries=0 -o Acquire::http::Timeout=20 update && timeout 600 "
                        "apt-get -qq -y -o Acquire::Retries=0 install {}",
                        list))),
        {.timeout = std::chrono::seconds(750), .sudo = true});
    if (!r.ok())
        throw Error(ExitCode::harden,
                    fmt::format("{} lacks the packages {} and installing them failed (exit {}): "
                                "{}; nothing was changed",
                                session.endpoint().host, list, r.exit_status,
                                tail_lines(r.err.empty() ? r.out : r.err, 3)),
                    "use an image from `labctl image build` (it has them), install them, or "
                    "turn those parts off under hardening: in lab.yaml");
    steps.done("packages", list + " installed");
}

} // namespace

HostFacts probe_host_facts(remote::Session& session) {
    return parse_host_facts(run_root_probe(session, host_facts_script()));
}

HardenReport apply_host(const HostPlan& plan, remote::Session& session,
                        const remote::ConnectOptions& reconnect, bool systemd,
                        const HostApplyOptions& options) {
    HardenReport report;
    Steps steps(session, report);
    if (plan.changes())
        install_packages(plan, session, steps);
    for (const auto& part : plan.parts) {
        for (const auto& note : part.notes)
            log::info("harden {}: {}: {}", session.endpoint().host, part.name, note);
        if (!part.changes) {
            steps.done(part.name, "up to date: " + part.summary);
            continue;
        }
        const PartFiles pf{part};
        const detail::RevertTimer timer{"labctl-harden-" + part.name, pf.script(), pf.pid(),
                                        options.revert_after, systemd};
        steps.sudo(part.name + ": state directory",
                   fmt::format("mkdir -p {0} && chmod 700 {0}", shell_quote(k_state)));
        for (std::size_t i = 0; i < part.files.size(); ++i)
            session.upload(pf.fresh(i), part.files[i].content, part.files[i].mode, true);
        session.upload(pf.script(), timer.script_text(revert_body(pf)), 0700, true);
        bool armed = false;
        try {
            steps.sudo(part.name + ": saving the current state", backup_command(pf));
            steps.sudo(part.name + ": arming the revert", timer.arm_command());
            armed = true;
            steps.sudo(part.name + ": activating", swap_in_command(pf) + " && " + part.activate,
                       std::chrono::seconds(150));
            steps.done(part.name, fmt::format("applied, revert armed for {}s: {}",
                                              options.revert_after.count(), part.summary));
            steps.sudo(part.name + ": its check (" + part.check + ")", part.check);
            if (options.fault == "abandon:" + part.name)
                throw Error(
                    ExitCode::harden,
                    fmt::format("injected fault: labctl lost after applying {}", part.name));
            try {
                remote::Session::connect(reconnect);
            } catch (const Interrupted&) {
                throw;
            } catch (const Error& e) {
                throw Error(ExitCode::harden,
                            fmt::format("{}: a new SSH login failed: {}", part.name, e.what()));
            }
            steps.done(part.name, "a new SSH login works");
            if (options.judge) {
                const auto failed = options.judge(part.name);
                if (!failed.empty())
                    throw Error(ExitCode::harden,
                                fmt::format("{}: the lab's checks failed with it live: {}",
                                            part.name, failed),
                                "the part broke what the lab runs; see the failing check, and "
                                "hardening." +
                                    part.name + " in lab.yaml");
                steps.done(part.name, "the lab's checks still pass");
            }
        } catch (const Error& e) {
            if (options.fault == "abandon:" + part.name)
                throw; // the armed revert on the target is what is being tested
            log::warn("harden {}: {}: reverting {}", session.endpoint().host, e.what(), part.name);
            try {
                steps.sudo(part.name + ": revert",
                           (armed ? timer.disarm_command() + "\n" : std::string()) +
                               revert_body(pf) + "rm -f " + shell_quote(pf.script()),
                           std::chrono::seconds(120));
            } catch (const Error& revert_error) {
                log::error("harden {}: reverting {} failed ({}){}", session.endpoint().host,
                           part.name, revert_error.what(),
                           armed ? fmt::format("; the armed revert retries in {}s",
                                               options.revert_after.count())
                                 : "");
            }
            if (e.code() == ExitCode::interrupted)
                throw;
            throw Error(ExitCode::harden,
                        fmt::format("{} (the previous state was restored)", e.what()), e.hint());
        }
        steps.sudo(part.name + ": disarming the revert",
                   timer.disarm_command() + "; " + cleanup_command(pf));
        steps.done(part.name, "kept");
        report.changed = true;
    }
    return report;
}

} // namespace labctl::harden
