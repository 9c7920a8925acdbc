#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <thread>

#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/progress.hpp>
#include <labctl/core/signals.hpp>
#include <labctl/core/text.hpp>
#include <labctl/provision/wait.hpp>
#include <labctl/remote/session_pool.hpp>

namespace labctl::provision {

namespace {

using Clock = std::chrono::steady_clock;

std::string console_text(GuestProbe& probe) {
    std::string out;
    try {
        for (const auto& line : probe.console_tail())
            out += fmt::format("\n  console: {}", line);
    } catch (const std::exception& e) {
        log::debug("cannot read the console: {}", e.what());
    }
    return out;
}

[[noreturn]] void fail(GuestProbe& probe, ExitCode code, std::string message, std::string hint) {
    throw Error(code, message + console_text(probe), std::move(hint));
}

void ensure_running(GuestProbe& probe, const WaitTarget& target, std::string_view phase) {
    if (!probe.running())
        fail(probe, ExitCode::ssh,
             fmt::format("VM '{}' stopped while waiting for {}", target.vm, phase),
             "read the console lines above; 'labctl provision --keep-on-failure' keeps the VM "
             "for inspection");
}

/// Ctrl-C, or the run giving this VM up: either ends the wait now.
void check_stop(const WaitTarget& target) {
    signals::check();
    if (target.cancelled && target.cancelled->load())
        throw Error(
            ExitCode::interrupted,
            fmt::format("VM '{}': wait cancelled (another VM of this run failed)", target.vm));
}

void sleep_poll(const WaitTarget& target, const WaitDeadlines& d, Clock::time_point deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    const auto step = std::min(d.poll, std::max(left, std::chrono::milliseconds(0)));
    // Sleep in short slices so Ctrl-C or a cancelled run is noticed quickly.
    const auto until = Clock::now() + step;
    while (Clock::now() < until) {
        check_stop(target);
        std::this_thread::sleep_for(
            std::min<Clock::duration>(std::chrono::milliseconds(100), until - Clock::now()));
    }
    check_stop(target);
}

/// The VM's address: with a reservation (mode nat, one per VM), only the reserved address, once
/// a DHCP lease or the guest agent shows the guest took it; without one, the first lease, else
/// the agent's address. A different address next to a reservation is a lease left from before
/// (the VM's ip changed: same MAC, the old lease lives until dnsmasq replaces it) or a guest not
/// using its reservation: neither is where the host key is pinned or where harden and deploy
/// connect, so the wait goes on for the reserved one.
std::string wait_ip(GuestProbe& probe, const WaitTarget& target, const WaitDeadlines& d,
                    std::string& source) {
    const auto deadline = Clock::now() + d.ip;
    const auto reserved = probe.reserved_ip();
    std::string other; // a non-reserved address seen, for the warning and the timeout message
    for (;;) {
        check_stop(target);
        ensure_running(probe, target, "its IP address");
        const auto lease = probe.lease_ip();
        if (lease && (!reserved || *lease == *reserved)) {
            source = "lease";
            return *lease;
        }
        const auto agent = probe.agent_ip();
        if (agent && (!reserved || *agent == *reserved)) {
            source = "agent";
            return *agent;
        }
        if (const auto& seen = lease ? lease : agent; seen && *seen != other) {
            other = *seen;
            log::warn("VM '{}': {} has {} although {} is reserved for it: waiting for the "
                      "reserved address",
                      target.vm, lease ? "a DHCP lease" : "the guest agent", other, *reserved);
        }
        if (Clock::now() >= deadline)
            fail(probe, ExitCode::timeout,
                 fmt::format("timed out after {}s waiting for the IP address of VM '{}' (phase "
                             "ip; reserved {}{})",
                             std::chrono::duration_cast<std::chrono::seconds>(d.ip).count(),
                             target.vm, reserved.value_or("nothing"),
                             other.empty() ? "" : fmt::format(", but it had {}", other)),
                 other.empty()
                     ? "the guest did not take a DHCP lease: check its network configuration and "
                       "the console"
                     : "the guest did not take its reserved address: does its network "
                       "configuration use the VM's MAC? ('virsh net-dhcp-leases' shows the "
                       "leases)");
        sleep_poll(target, d, deadline);
    }
}

remote::Session wait_ssh(GuestProbe& probe, const WaitTarget& target, const WaitDeadlines& d,
                         const remote::ConnectOptions& options) {
    const auto deadline = Clock::now() + d.ssh;
    for (;;) {
        check_stop(target);
        ensure_running(probe, target, "SSH");
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left <= std::chrono::milliseconds(0))
            break;
        try {
            // Short slices so a stopped domain or Ctrl-C ends the wait early.
            return remote::wait_for_session(options,
                                            std::min(left, std::chrono::milliseconds(5000)));
        } catch (const Error& e) {
            if (e.code() != ExitCode::timeout)
                throw;
            log::debug("VM '{}': SSH not answering yet: {}", target.vm, e.what());
        }
    }
    fail(probe, ExitCode::timeout,
         fmt::format("timed out after {}s waiting for SSH on VM '{}' at {} (phase ssh)",
                     std::chrono::duration_cast<std::chrono::seconds>(d.ssh).count(), target.vm,
                     options.endpoint.to_string()),
         "the guest did not start sshd with the injected host key: read the console lines");
}

/// Reads cloud-init's status files in one round trip; true when they say it is done.
bool cloud_init_done_already(remote::Session& session, const WaitTarget& target) {
    if (target.cloud_init_run_dir.empty())
        return false;
    const auto dir = shell_quote(target.cloud_init_run_dir);
    const std::string marker = "@@labctl-result";
    const auto r = session.exec(fmt::format("cat {0}/status.json 2>/dev/null; echo; echo {1}; "
                                            "cat {0}/result.json 2>/dev/null",
                                            dir, marker),
                                {.timeout = std::chrono::seconds(30), .phase = "cloud-init"});
    if (!r.ok())
        return false; // cloud-init itself answers below
    const auto at = r.out.find(marker);
    if (at == std::string::npos)
        return false;
    return cloud_init_done_from_files(r.out.substr(0, at), r.out.substr(at + marker.size()));
}

std::string wait_cloud_init(GuestProbe& probe, remote::Session& session, const WaitTarget& target,
                            const WaitDeadlines& d) {
    check_stop(target);
    ensure_running(probe, target, "cloud-init");
    if (cloud_init_done_already(session, target)) {
        log::info("VM '{}': cloud-init finished earlier ({}/status.json and result.json)",
                  target.vm, target.cloud_init_run_dir);
        return "done";
    }
    remote::ExecOptions eo;
    eo.timeout = d.cloud_init;
    eo.phase = "cloud-init";
    // The run giving this VM up ends `cloud-init status --wait` (and its remote process group)
    // at the exec's next poll instead of after up to d.cloud_init.
    if (target.cancelled != nullptr)
        eo.cancelled = [flag = target.cancelled] {
            return flag->load();
        };
    remote::ExecResult r;
    try {
        r = session.exec(target.cloud_init_command, eo);
    } catch (const Interrupted&) {
        throw;
    } catch (const Error& e) {
        if (e.code() == ExitCode::interrupted && target.cancelled && target.cancelled->load())
            throw Error(ExitCode::interrupted,
                        fmt::format("VM '{}': wait cancelled (another VM of this run failed) "
                                    "during cloud-init; its remote command was ended",
                                    target.vm));
        throw;
    }
    if (r.timed_out)
        fail(probe, ExitCode::timeout,
             fmt::format("timed out after {}s waiting for cloud-init on VM '{}' (phase "
                         "cloud-init)",
                         std::chrono::duration_cast<std::chrono::seconds>(d.cloud_init).count(),
                         target.vm),
             "cloud-init is still running: a slow package mirror? 'cloud-init status --long' "
             "in the guest tells");
    std::string status = "unknown";
    std::string errors;
    try {
        const auto j = nlohmann::json::parse(r.out);
        status = j.value("status", std::string("unknown"));
        if (const auto it = j.find("errors"); it != j.end() && it->is_array())
            for (const auto& e : *it)
                errors += fmt::format("{}{}", errors.empty() ? "" : "; ",
                                      e.is_string() ? e.get<std::string>() : e.dump());
    } catch (const nlohmann::json::exception&) {
        log::debug("VM '{}': cloud-init status printed no JSON: {}", target.vm, r.out);
    }
    if (r.exit_status == 0)
        return "done";
    if (r.exit_status == 2 && !target.strict) {
        log::warn("VM '{}': cloud-init finished with recoverable errors (status {}){}", target.vm,
                  status, errors.empty() ? "" : ": " + errors);
        return "degraded";
    }
    fail(probe, ExitCode::ssh,
         fmt::format("cloud-init on VM '{}' reported {} (exit {}{}){}", target.vm, status,
                     r.exit_status, r.exit_status == 2 ? ", a warning: --strict is set" : "",
                     errors.empty() ? "" : ": " + errors),
         "'labctl ssh <vm> -- sudo cloud-init status --long' and /var/log/cloud-init.log tell "
         "why");
}

} // namespace

WaitTarget wait_target(const config::LabSpec& spec, const config::VmSpec& vm) {
    WaitTarget target;
    target.vm = vm.name;
    const auto ssh = spec.ssh_address(vm);
    target.ssh.endpoint = {ssh.host, ssh.port, spec.ssh.user};
    // mode user: no DHCP, no lease: the VM is reached through its forward from the start.
    target.address_known = spec.user_network();
    target.ssh.known_hosts = spec.ssh.known_hosts;
    target.ssh.private_key = spec.ssh.private_key;
    // A guest on a remote hypervisor's network is reached through that host (ssh.jump).
    if (const auto j = spec.jump_host())
        target.ssh.jump = remote::JumpHost{{j->host, j->port, j->user}, j->private_key, true};
    return target;
}

bool cloud_init_done_from_files(const std::string& status_json, const std::string& result_json) {
    // canonical/cloud-init@22.4.2:cloudinit/cmd/status.py get_status_details(): RUNNING while
    // status.json exists without result.json, while v1.stage is set or a stage has started and
    // not finished; ERROR with any stage's errors; DONE when none of that and some stage ran.
    // cloudinit/cmd/main.py status_wrapper() writes result.json last, after modules-final.
    try {
        if (trim(result_json).empty())
            return false;
        const auto result = nlohmann::json::parse(result_json);
        const auto status = nlohmann::json::parse(status_json);
        if (!status.is_object() || !result.is_object())
            return false;
        const auto v1 = status.find("v1");
        if (v1 == status.end() || !v1->is_object())
            return false;
        double latest = 0;
        for (const auto& [key, value] : v1->items()) {
            if (key == "stage") {
                if (!value.is_null() && !(value.is_string() && value.get<std::string>().empty()))
                    return false; // a stage is running
            } else if (value.is_object()) {
                for (const char* errors : {"errors", "recoverable_errors"})
                    if (const auto e = value.find(errors);
                        e != value.end() && !e->is_null() && !e->empty())
                        return false; // cloud-init reports these itself (error, degraded)
                const auto number = [&](const char* k) {
                    const auto v = value.find(k);
                    return v != value.end() && v->is_number() ? v->get<double>() : 0.0;
                };
                const double start = number("start"), finished = number("finished");
                if (finished == 0 && start != 0)
                    return false;
                latest = std::max({latest, start, finished});
            }
        }
        if (const auto r1 = result.find("v1"); r1 != result.end() && r1->is_object())
            if (const auto e = r1->find("errors"); e != r1->end() && !e->is_null() && !e->empty())
                return false;
        return latest > 0;
    } catch (const nlohmann::json::exception&) {
        return false;
    }
}

std::optional<std::string> pick_lease(const std::vector<std::string>& leases,
                                      const std::optional<std::string>& reserved) {
    if (reserved && std::find(leases.begin(), leases.end(), *reserved) != leases.end())
        return reserved;
    if (leases.empty())
        return std::nullopt;
    return leases.front();
}

WaitResult wait_for_guest(GuestProbe& probe, const WaitTarget& target,
                          const WaitDeadlines& deadlines) {
    WaitResult result;
    remote::ConnectOptions options = target.ssh;
    Progress progress(fmt::format("VM '{}'", target.vm)); // the live line's phase and time
    if (target.address_known) {
        result.ip = target.ssh.endpoint.host;
        result.ip_source = "forward";
        log::info("VM '{}': waiting for SSH at {}:{}", target.vm, options.endpoint.host,
                  options.endpoint.port);
        progress.show(
            fmt::format("waiting for SSH at {}:{}", options.endpoint.host, options.endpoint.port));
    } else {
        log::info("VM '{}': waiting for its IP address", target.vm);
        progress.show("waiting for its IP address (DHCP lease or guest agent)");
        result.ip = wait_ip(probe, target, deadlines, result.ip_source);
        log::info("VM '{}': {} (from the {}); waiting for SSH", target.vm, result.ip,
                  result.ip_source);
        progress.show(fmt::format("{}; waiting for SSH", result.ip));
        options.endpoint.host = result.ip;
    }
    auto session = wait_ssh(probe, target, deadlines, options);
    log::info("VM '{}': SSH up; waiting for cloud-init", target.vm);
    progress.show("SSH up; waiting for cloud-init");
    result.cloud_init = wait_cloud_init(probe, session, target, deadlines);
    log::info("VM '{}': cloud-init {}", target.vm, result.cloud_init);
    // The next stages (harden, deploy, verify) lease this login instead of opening their own.
    remote::keep_session(options, std::move(session));
    return result;
}

} // namespace labctl::provision
