#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include <labctl/core/duration.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/progress.hpp>
#include <labctl/core/text.hpp>
#include <labctl/deploy/compose.hpp>
#include <labctl/remote/session.hpp>

namespace labctl::deploy {

std::string ComposeFacts::command() const {
    return flavor == ComposeFlavor::v2 ? "docker compose" : "docker-compose";
}

ComposeFacts detect_compose(remote::Session& session, bool sudo) {
    const auto r = session.exec(
        "if docker compose version --short >/dev/null 2>&1; then echo \"v2 $(docker compose "
        "version --short)\"; elif command -v docker-compose >/dev/null 2>&1; then echo \"v1 "
        "$(docker-compose version --short)\"; else echo none; fi",
        {.timeout = std::chrono::seconds(60), .sudo = sudo});
    std::istringstream in(r.out);
    std::string flavor, version;
    in >> flavor >> version;
    if (!r.ok() || (flavor != "v1" && flavor != "v2"))
        throw Error(ExitCode::deploy,
                    fmt::format("no Docker Compose on {} ({})", session.endpoint().host,
                                r.ok() ? "neither 'docker compose' nor 'docker-compose'" : r.err),
                    "install docker.io and docker-compose (Debian) or the compose plugin");
    return {flavor == "v2" ? ComposeFlavor::v2 : ComposeFlavor::v1, version};
}

namespace {

/// Runs `compose -p <project> <args>` in the stack directory with the lab's variables and secrets
/// (every compose command interpolates the file, so each needs them).
remote::ExecResult run_compose(remote::Session& session, const ComposeFacts& facts,
                               const ComposeOptions& o, const std::string& args,
                               remote::ExecOptions exec) {
    auto cmd = compose_command(facts.command(), o.remote_dir, o.project, o.env, args);
    exec.stdin_data = std::move(cmd.stdin_data);
    exec.sudo = o.sudo;
    return session.exec(cmd.command, exec);
}

// Saves `compose ps` as JSON and the last 200 log lines of every service that is not healthy.
std::string collect_evidence(remote::Session& session, const ComposeFacts& facts,
                             const ComposeOptions& o, const std::vector<ServiceState>& states) {
    if (o.reports_dir.empty())
        return {};
    const auto dir = std::filesystem::path(o.reports_dir) / ("deploy-" + utc_now("%Y%m%dT%H%M%SZ"));
    std::filesystem::create_directories(dir);
    nlohmann::json ps = nlohmann::json::array();
    for (const auto& s : states)
        ps.push_back({{"service", s.service}, {"state", s.state}, {"health", s.health}});
    std::ofstream(dir / "ps.json") << ps.dump(2) << "\n";
    if (facts.flavor == ComposeFlavor::v2) {
        const auto r = run_compose(session, facts, o, "ps -a --format json",
                                   {.timeout = std::chrono::seconds(60)});
        std::ofstream(dir / "compose-ps.json") << r.out;
    }
    for (const auto& s : states) {
        if (s.state == "running" && (s.health.empty() || s.health == "healthy"))
            continue;
        const auto r =
            run_compose(session, facts, o,
                        fmt::format("logs --no-color --tail 200 {} 2>&1", shell_quote(s.service)),
                        {.timeout = std::chrono::seconds(60)});
        std::ofstream(dir / (s.service + ".log")) << r.out;
    }
    return dir.string();
}

std::string describe(const std::vector<ServiceState>& states) {
    std::vector<std::string> parts;
    for (const auto& s : states)
        parts.push_back(s.health.empty() ? fmt::format("{} {}", s.service, s.state)
                                         : fmt::format("{} {} ({})", s.service, s.state, s.health));
    return fmt::format("{}", fmt::join(parts, ", "));
}

} // namespace

// Compose's own reason, e.g. "Cannot start service backend: ..." (v1 prints "ERROR: for x  ..."
// then "ERROR: ..."; v2 "Error response from daemon: ..."): the first such line, trimmed.
std::string first_compose_error(const std::string& output) {
    std::istringstream in(output);
    for (std::string line; std::getline(in, line);) {
        for (const std::string_view tag :
             {"ERROR: for ", "ERROR: ", "Error response from daemon: ", "Error: "}) {
            const auto at = line.find(tag);
            if (at == std::string::npos)
                continue;
            std::string rest = line.substr(at + tag.size());
            if (tag == "ERROR: for ") { // "ERROR: for lab_backend_1  Cannot start ...": the reason
                const auto gap = rest.find("  ");
                if (gap != std::string::npos)
                    rest = rest.substr(gap + 2);
            }
            while (!rest.empty() && (rest.back() == ' ' || rest.back() == '\r'))
                rest.pop_back();
            if (!rest.empty())
                return rest;
        }
    }
    return {};
}

RemoteCommand up_command(const ComposeFacts& facts, const ComposeOptions& o) {
    // --remove-orphans drops services removed from the file; volumes are never removed.
    std::string args = "up -d --build --remove-orphans";
    if (facts.flavor == ComposeFlavor::v2)
        args += fmt::format(" --wait --wait-timeout {}", o.wait_timeout.count());
    return compose_command(facts.command(), o.remote_dir, o.project, o.env, args);
}

std::string ps_command(const std::string& project) {
    // .Mounts: each mount's volume name, or its source path when it has none (a bind mount),
    // comma-separated, whole with --no-trunc (docker/cli@v20.10.24:
    // cli/command/formatter/container.go, ContainerContext.Mounts).
    return fmt::format("docker ps -a --no-trunc --filter label=com.docker.compose.project={} "
                       "--format '{{{{.ID}}}}\t{{{{.State}}}}\t{{{{.Status}}}}\t{{{{.Label "
                       "\"com.docker.compose.service\"}}}}\t{{{{.Label \"labctl.reload\"}}}}\t"
                       "{{{{.Mounts}}}}'",
                       shell_quote(project));
}

std::vector<ServiceState> parse_ps(const std::string& out) {
    // moby/moby@v20.10.24:container/state.go State.String() writes the status: "Up <time>",
    // followed by " (healthy)", " (unhealthy)" or " (health: starting)" with a healthcheck;
    // "Exited (<code>) <time> ago"; "Restarting (<code>) <time> ago"; "Created"; "Dead".
    std::vector<ServiceState> states;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) {
        std::vector<std::string> f;
        std::size_t start = 0;
        for (std::size_t tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1)
            f.push_back(line.substr(start, tab - start));
        f.push_back(line.substr(start));
        if ((f.size() != 4 && f.size() != 6) || f[0].empty())
            continue;
        ServiceState s;
        s.container_id = f[0];
        s.state = f[1];
        const auto& status = f[2];
        s.service = std::string(trim(f[3]));
        if (f.size() == 6) {
            s.reload_signal = std::string(trim(f[4]));
            std::istringstream mounts{std::string(trim(f[5]))};
            for (std::string m; std::getline(mounts, m, ',');)
                if (!m.empty())
                    s.mounts.push_back(m);
        }
        if (const auto open = status.find('(');
            open != std::string::npos &&
            (status.rfind("Exited", 0) == 0 || status.rfind("Restarting", 0) == 0))
            s.exit_code = std::atoi(status.c_str() + open + 1);
        if (status.find("(healthy)") != std::string::npos)
            s.health = "healthy";
        else if (status.find("(unhealthy)") != std::string::npos)
            s.health = "unhealthy";
        else if (status.find("(health: starting)") != std::string::npos)
            s.health = "starting";
        states.push_back(s);
    }
    return states;
}

namespace {

std::vector<ServiceState> states_now(remote::Session& session, const ComposeOptions& o) {
    const auto r =
        session.exec(ps_command(o.project), {.timeout = std::chrono::seconds(60), .sudo = o.sudo});
    if (!r.ok())
        throw Error(ExitCode::deploy,
                    fmt::format("reading the containers' state on {} failed{}: {}",
                                session.endpoint().host,
                                r.timed_out ? " (timed out after 60s)"
                                            : fmt::format(" (exit {})", r.exit_status),
                                trim(r.err)),
                    "is Docker running on the target?");
    return parse_ps(r.out);
}

/// Polls until every service is running and healthy (or done); throws on a service that exits
/// or turns unhealthy, and at the deadline, with the evidence saved.
DeployReport wait_serving(remote::Session& session, const ComposeFacts& facts,
                          const ComposeOptions& o, std::chrono::steady_clock::time_point started) {
    const auto deadline = started + o.wait_timeout;
    Progress progress(fmt::format("compose {}", session.endpoint().host));
    while (true) {
        const auto states = states_now(session, o);
        const auto serving = std::count_if(states.begin(), states.end(),
                                           [](const ServiceState& s) { return s.serving(); });
        progress.update(
            fmt::format("{} of {} services ready: {}", serving, states.size(), describe(states)),
            {{"ready", std::to_string(serving)}, {"services", std::to_string(states.size())}});
        bool ready = !states.empty();
        for (const auto& s : states) {
            if (s.completed())
                continue; // a one-shot service (e.g. lab-init) that did its work
            if (s.state == "exited" || s.state == "dead" || s.health == "unhealthy") {
                const auto evidence = collect_evidence(session, facts, o, states);
                throw Error(ExitCode::deploy,
                            fmt::format("service {} is {} on {}", s.service,
                                        s.health == "unhealthy" ? "unhealthy"
                                        : s.state == "exited"
                                            ? fmt::format("exited with status {}", s.exit_code)
                                            : s.state,
                                        session.endpoint().host),
                            "evidence: " + evidence);
            }
            ready = ready && s.serving();
        }
        if (ready) {
            const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::steady_clock::now() - started);
            log::info("{}all {} services running and healthy: {}", o.log_prefix, states.size(),
                      describe(states));
            return {states, elapsed};
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            const auto evidence = collect_evidence(session, facts, o, states);
            throw Error(ExitCode::timeout,
                        fmt::format("compose: services not healthy after {}s (phase compose): {}",
                                    o.wait_timeout.count(), describe(states)),
                        "evidence: " + evidence);
        }
        std::this_thread::sleep_for(std::chrono::seconds(2));
    }
}

} // namespace

DeployReport compose_up(remote::Session& session, const ComposeFacts& facts,
                        const ComposeOptions& o) {
    const auto started = std::chrono::steady_clock::now();
    auto stream = [&](const std::string& line) {
        log::info("{}{}", o.log_prefix, line);
    };
    const auto up_cmd = up_command(facts, o);
    const auto up =
        session.exec(up_cmd.command, {.timeout = o.wait_timeout + std::chrono::seconds(60),
                                      .stdin_data = up_cmd.stdin_data,
                                      .sudo = o.sudo,
                                      .on_stdout_line = stream,
                                      .on_stderr_line = stream});
    if (!up.ok()) {
        std::vector<ServiceState> states; // evidence only: compose's failure is what is reported
        try {
            states = states_now(session, o);
        } catch (const Error& e) {
            if (e.code() == ExitCode::interrupted)
                throw;
            log::warn("{}{}", o.log_prefix, e.what());
        }
        const auto evidence = collect_evidence(session, facts, o, states);
        if (up.timed_out)
            throw Error(ExitCode::timeout,
                        fmt::format("compose: 'up' did not finish within {}s (phase compose)",
                                    o.wait_timeout.count()),
                        evidence.empty() ? "" : "evidence: " + evidence);
        const auto why = first_compose_error(up.err + "\n" + up.out);
        throw Error(ExitCode::deploy,
                    fmt::format("compose up failed on {} (exit {}): {}{}", session.endpoint().host,
                                up.exit_status,
                                why.empty() ? "" : why + "; services: ", describe(states)),
                    evidence.empty() ? "see the output above" : "evidence: " + evidence);
    }
    // v2 --wait already waited; v1 has no --wait, so poll until every service is running and
    // healthy (the same check confirms v2's answer).
    return wait_serving(session, facts, o, started);
}

namespace {

/// The error of a `docker kill`/`docker restart` of `services` that failed, with the evidence.
Error step_failed(remote::Session& session, const ComposeFacts& facts, const ComposeOptions& o,
                  const std::vector<ServiceState>& services, const remote::ExecResult& r,
                  const std::string& what, std::chrono::seconds limit, const std::string& hint) {
    const auto evidence = collect_evidence(session, facts, o, services);
    return Error(r.timed_out ? ExitCode::timeout : ExitCode::deploy,
                 fmt::format("{} on {} failed{}: {}", what, session.endpoint().host,
                             r.timed_out ? fmt::format(" (not done within {}s)", limit.count())
                                         : fmt::format(" (exit {})", r.exit_status),
                             trim(r.err)),
                 evidence.empty() ? hint : "evidence: " + evidence);
}

} // namespace

DeployReport signal_services(remote::Session& session, const ComposeFacts& facts,
                             const ComposeOptions& o, const std::vector<ServiceState>& services) {
    const auto started = std::chrono::steady_clock::now();
    std::string kills, names;
    for (const auto& s : services) {
        kills += fmt::format("docker kill -s {} {} >/dev/null && ", shell_quote(s.reload_signal),
                             shell_quote(s.container_id));
        names += fmt::format("{}{} ({})", names.empty() ? "" : ", ", s.service, s.reload_signal);
    }
    log::info("{}reloading {}: a file under a directory it mounts changed", o.log_prefix, names);
    // The signals and the states after them in one round trip: a service that survives its
    // reload needs no poll.
    const auto r = session.exec(
        kills + ps_command(o.project),
        {.timeout = std::chrono::seconds(120), .phase = "docker kill (reload)", .sudo = o.sudo});
    if (!r.ok())
        throw step_failed(session, facts, o, services, r, "reloading " + names,
                          std::chrono::seconds(120),
                          "is the labctl.reload label a signal docker kill knows?");
    const auto states = parse_ps(r.out);
    if (!states.empty() && std::all_of(states.begin(), states.end(),
                                       [](const ServiceState& s) { return s.serving(); })) {
        const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - started);
        log::info("{}all {} services running and healthy after the reload: {}", o.log_prefix,
                  states.size(), describe(states));
        return {states, elapsed};
    }
    return wait_serving(session, facts, o, started);
}

DeployReport restart_services(remote::Session& session, const ComposeFacts& facts,
                              const ComposeOptions& o, const std::vector<ServiceState>& services) {
    const auto started = std::chrono::steady_clock::now();
    std::string ids, names;
    for (const auto& s : services) {
        ids += " " + shell_quote(s.container_id);
        names += (names.empty() ? "" : ", ") + s.service;
    }
    log::info("{}restarting {} (a file it mounts changed)", o.log_prefix, names);
    const auto r =
        session.exec("docker restart" + ids,
                     {.timeout = o.wait_timeout, .phase = "docker restart", .sudo = o.sudo});
    if (!r.ok())
        throw step_failed(session, facts, o, services, r, "restarting " + names, o.wait_timeout,
                          "is Docker running on the target?");
    return wait_serving(session, facts, o, started);
}

} // namespace labctl::deploy
