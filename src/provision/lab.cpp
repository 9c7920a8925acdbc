// A lab on several hosts: each host's view of the lab is planned, provisioned, read and torn down
// on its own connection, all hosts at once (core's parallel_for, one worker per host), and the
// results carry the host's name. Provisioning is all or nothing across hosts.

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <atomic>
#include <exception>
#include <mutex>
#include <optional>

#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/parallel.hpp>
#include <labctl/provision/lab.hpp>

#include "journal.hpp"
#include "provision_parts.hpp"

namespace labctl::provision {

LibvirtSession& session_for(const HostSessions& sessions, std::size_t i, const std::string& uri,
                            std::optional<LibvirtSession>& owned) {
    if (i < sessions.size() && sessions[i] != nullptr)
        return *sessions[i];
    owned.emplace(LibvirtSession::open(uri));
    return *owned;
}

namespace {

/// "host 'kvm2': <what>" in a lab of several hosts; `what` as it is otherwise.
std::string on_host(const config::LabSpec& spec, const config::HostSpec& host,
                    const std::string& what) {
    return spec.several_hosts() ? fmt::format("host '{}': {}", host.name, what) : what;
}

HostFailure failure_of(const config::HostSpec& host, std::exception_ptr error) {
    HostFailure f{host.name, host.libvirt.uri, ExitCode::internal, {}, {}};
    try {
        std::rethrow_exception(error);
    } catch (const Error& e) {
        f.code = e.code();
        f.message = e.what();
        f.hint = e.hint();
    } catch (const std::exception& e) {
        f.message = e.what();
    }
    return f;
}

/// Runs body(i) for every host at once; a host's failure is recorded, never stops another.
std::vector<std::exception_ptr> each_host(const config::LabSpec& spec,
                                          const std::function<void(std::size_t)>& body) {
    std::vector<std::exception_ptr> errors(spec.hosts.size());
    parallel_for(spec.hosts.size(), spec.hosts.size(), [&](std::size_t i) {
        try {
            body(i);
        } catch (...) {
            errors[i] = std::current_exception();
        }
    });
    return errors;
}

} // namespace

std::vector<HostPlan> plan_lab(const config::LabSpec& spec, const PlanOptions& options) {
    std::vector<HostPlan> out(spec.hosts.size());
    const auto errors = each_host(spec, [&](std::size_t i) {
        out[i] = {spec.hosts[i].name, make_plan(spec.for_host(spec.hosts[i]), options)};
    });
    for (std::size_t i = 0; i < errors.size(); ++i)
        if (errors[i]) {
            const auto f = failure_of(spec.hosts[i], errors[i]);
            throw Error(f.code, on_host(spec, spec.hosts[i], f.message), f.hint);
        }
    return out;
}

std::vector<HostPlan> plan_lab(const config::LabSpec& spec, const HostSessions& sessions) {
    std::vector<HostPlan> out;
    for (std::size_t i = 0; i < spec.hosts.size(); ++i) {
        std::optional<LibvirtSession> owned;
        auto& s = session_for(sessions, i, spec.hosts[i].libvirt.uri, owned);
        out.push_back(
            {spec.hosts[i].name, plan_against(spec.for_host(spec.hosts[i]), s.inventory(), {})});
    }
    return out;
}

ProvisionResult provision_lab(const config::LabSpec& spec, const ProvisionOptions& options) {
    return provision_lab(spec, HostSessions{}, options);
}

ProvisionResult provision_lab(const config::LabSpec& spec, const HostSessions& sessions,
                              const ProvisionOptions& options) {
    const std::size_t n = spec.hosts.size();
    std::atomic<bool> cancel{false};
    ProvisionOptions o = options;
    o.cancelled = &cancel;
    std::vector<config::LabSpec> views;
    for (const auto& h : spec.hosts)
        views.push_back(spec.for_host(h));
    std::vector<std::optional<LibvirtSession>> owned(n);
    std::vector<std::unique_ptr<HostProvisioning>> runs(n);
    std::vector<ProvisionResult> results(n);
    std::mutex mutex;
    // The cause: the first host whose failure is its own. A host whose waits stopped because
    // another failed ("wait cancelled") ends with exit 130 too, and may well get here first:
    // it only counts when nothing else failed (Ctrl-C, which every host sees).
    std::optional<std::size_t> first;
    bool first_is_own = false;
    const auto errors = each_host(spec, [&](std::size_t i) {
        if (views[i].vms.empty() && spec.several_hosts()) {
            results[i].notes.push_back(
                fmt::format("host '{}' has no VMs: nothing was made there", spec.hosts[i].name));
            return;
        }
        try {
            auto& session = session_for(sessions, i, views[i].libvirt.uri, owned[i]);
            runs[i] = std::make_unique<HostProvisioning>(views[i], session, o);
            results[i] = runs[i]->run();
        } catch (const Error& e) {
            const bool own = e.code() != ExitCode::interrupted;
            {
                const std::lock_guard lock(mutex);
                if (!first || (own && !first_is_own)) {
                    first = i;
                    first_is_own = own;
                }
            }
            cancel = true; // after the cause is recorded: see parallel_for
            throw;
        } catch (...) {
            {
                const std::lock_guard lock(mutex);
                if (!first || !first_is_own) {
                    first = i;
                    first_is_own = true;
                }
            }
            cancel = true;
            throw;
        }
    });

    if (first) {
        // The hosts that succeeded keep nothing either (unless --keep-on-failure).
        std::vector<std::string> others;
        for (std::size_t i = 0; i < n; ++i) {
            if (i == *first || !runs[i])
                continue;
            if (errors[i]) {
                // It failed too (stopped by the cause, or on its own): it rolled itself back
                // (or kept what it made), as its run does.
                others.push_back(
                    fmt::format("'{}' stopped and {}", spec.hosts[i].name,
                                options.keep_on_failure ? "kept what it made" : "rolled back"));
                continue;
            }
            if (options.keep_on_failure) {
                others.push_back(
                    fmt::format("kept on '{}' (--keep-on-failure)", spec.hosts[i].name));
                continue;
            }
            const auto outcome = runs[i]->undo();
            others.push_back(outcome.left.empty()
                                 ? fmt::format("rolled back on '{}' ({} object{})",
                                               spec.hosts[i].name, outcome.removed.size(),
                                               outcome.removed.size() == 1 ? "" : "s")
                                 : fmt::format("on '{}' left for 'labctl down': {}",
                                               spec.hosts[i].name, fmt::join(outcome.left, ", ")));
        }
        try {
            std::rethrow_exception(errors[*first]);
        } catch (const Interrupted&) {
            throw;
        } catch (const Error& e) {
            std::string hint = e.hint();
            if (!others.empty())
                hint += fmt::format("{}the other hosts: {}", hint.empty() ? "" : "; ",
                                    fmt::join(others, "; "));
            throw Error(e.code(), on_host(spec, spec.hosts[*first], e.what()), hint);
        }
    }

    ProvisionResult out;
    for (std::size_t i = 0; i < n; ++i) {
        for (auto& c : results[i].changes) {
            c.host = spec.hosts[i].name;
            out.changes.push_back(std::move(c));
        }
        for (auto& v : results[i].vms) {
            v.host = spec.hosts[i].name;
            out.vms.push_back(std::move(v));
        }
        for (auto& note : results[i].notes)
            out.notes.push_back(std::move(note));
    }
    return out;
}

LabStatus status_lab(const config::LabSpec& spec, const HostSessions& sessions) {
    std::vector<std::vector<VmStatus>> rows(spec.hosts.size());
    const auto errors = each_host(spec, [&](std::size_t i) {
        std::optional<LibvirtSession> owned;
        auto& s = session_for(sessions, i, spec.hosts[i].libvirt.uri, owned);
        rows[i] = status(spec.for_host(spec.hosts[i]), s);
    });
    LabStatus out;
    for (std::size_t i = 0; i < spec.hosts.size(); ++i) {
        if (errors[i]) {
            out.unreachable.push_back(failure_of(spec.hosts[i], errors[i]));
            for (const auto& vm : spec.vms)
                if (vm.host == spec.hosts[i].name)
                    out.vms.push_back(
                        {vm.name, "", "unknown", "", "host unreachable", spec.hosts[i].name});
            continue;
        }
        for (auto& r : rows[i]) {
            r.host = spec.hosts[i].name;
            out.vms.push_back(std::move(r));
        }
    }
    return out;
}

LabDown down_lab(const config::LabSpec& spec, const DownOptions& options,
                 const HostSessions& sessions) {
    std::vector<std::vector<Change>> changes(spec.hosts.size());
    // The hosts' downs run at once; the host keys (one directory, one known_hosts for the lab)
    // go afterwards, once, and only those of VMs whose host was cleaned.
    DownOptions per_host = options;
    per_host.keep_state = spec.several_hosts() || options.keep_state;
    const auto errors = each_host(spec, [&](std::size_t i) {
        std::optional<LibvirtSession> owned;
        auto& s = session_for(sessions, i, spec.hosts[i].libvirt.uri, owned);
        changes[i] = down(spec.for_host(spec.hosts[i]), s, per_host);
    });
    LabDown out;
    std::vector<std::string> cleaned_vms;
    for (std::size_t i = 0; i < spec.hosts.size(); ++i) {
        if (errors[i]) {
            out.failures.push_back(failure_of(spec.hosts[i], errors[i]));
            continue;
        }
        for (const auto& vm : spec.vms)
            if (vm.host == spec.hosts[i].name)
                cleaned_vms.push_back(vm.name);
        for (auto& c : changes[i]) {
            c.host = spec.hosts[i].name;
            out.changes.push_back(std::move(c));
        }
    }
    if (options.purge && !options.keep_state && spec.several_hosts()) {
        // All hosts cleaned: every key (those of VMs gone from lab.yaml too); else only those
        // of the cleaned hosts' VMs, so a later down can still reach the rest.
        const auto only = out.failures.empty()
                              ? std::nullopt
                              : std::optional<std::vector<std::string>>(cleaned_vms);
        if (auto c = purge_host_keys(spec, only))
            out.changes.push_back(std::move(*c));
    }
    return out;
}

} // namespace labctl::provision
