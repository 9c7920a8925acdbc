#pragma once
// Running the stack with Docker Compose on the target over SSH: v2 (`docker compose`, with
// --wait) or v1 (`docker-compose`, Debian 12's, with labctl's own health poll). Output streams
// with a per-line prefix; on failure the state and logs are saved under the local reports
// directory. Volumes are never removed: data survives redeploys.

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <labctl/deploy/compose_env.hpp>

namespace labctl::remote {
class Session;
}

namespace labctl::deploy {

enum class ComposeFlavor { v2, v1 };

struct ComposeFacts {
    ComposeFlavor flavor = ComposeFlavor::v2;
    std::string version;
    /// The command prefix: "docker compose" or "docker-compose".
    std::string command() const;
};

struct ComposeOptions {
    std::string remote_dir;
    std::string project = "lab";
    std::chrono::seconds wait_timeout{600};
    ComposeEnv env;          ///< variables and secrets for interpolation (pin set, registry)
    std::string reports_dir; ///< local; failure evidence is written here
    std::string log_prefix;  ///< e.g. "lab1 | "
    bool sudo = true;
};

/// Detects the compose flavour on the target; throws Error(deploy) when there is none.
ComposeFacts detect_compose(remote::Session& session, bool sudo);

/// The shell command that brings the stack up, and its stdin (the secrets) (pure).
RemoteCommand up_command(const ComposeFacts& facts, const ComposeOptions& options);

struct ServiceState {
    std::string service;
    std::string state;  ///< running, exited, ...
    int exit_code = 0;  ///< the container's exit status once it exited
    std::string health; ///< healthy, unhealthy, starting, or "" without a healthcheck
    std::string container_id;
    /// Bind-mount sources (absolute paths on the target) and named volumes (their names).
    std::vector<std::string> mounts;
    /// The service's `labctl.reload` label: the signal that makes it read its files again
    /// (e.g. SIGHUP), sent instead of a restart when a file under a directory it mounts changed.
    std::string reload_signal;
    /// A one-shot service that exited 0 (what compose's service_completed_successfully waits for).
    bool completed() const { return state == "exited" && exit_code == 0; }
    /// Running (and healthy when it has a healthcheck), or completed.
    bool serving() const {
        return completed() || (state == "running" && (health.empty() || health == "healthy"));
    }
};

/// Compose's own reason for a failed `up` (the first "ERROR: ..." of v1, "Error response from
/// daemon: ..." of v2), trimmed; empty when there is none (pure).
std::string first_compose_error(const std::string& output);

/// Shell text listing every container of compose project `project` with one `docker ps`, a
/// line each: id, state, status, service, reload signal, mounts (pure). One Docker CLI start: under
/// TCG each costs about a second, so not `ps` plus `inspect`.
std::string ps_command(const std::string& project);

/// Parses that output (pure): the exit code and health come from the status text the daemon
/// writes ("Exited (3) 2 seconds ago", "Up 5 minutes (healthy)", "(health: starting)"); the
/// reload and mounts columns are optional.
std::vector<ServiceState> parse_ps(const std::string& out);

struct DeployReport {
    std::vector<ServiceState> services;
    std::chrono::milliseconds elapsed{0};
};

/// Brings the stack up and waits until every service is running and healthy. Throws
/// Error(timeout) naming the compose phase, or Error(deploy) with the evidence saved.
DeployReport compose_up(remote::Session& session, const ComposeFacts& facts,
                        const ComposeOptions& options);

/// Sends each of these services its reload signal (`docker kill -s`) and checks in the same
/// round trip that every service still serves (else waits like compose_up).
DeployReport signal_services(remote::Session& session, const ComposeFacts& facts,
                             const ComposeOptions& options,
                             const std::vector<ServiceState>& services);

/// Restarts these services' containers with one `docker restart` (a restart mounts a changed
/// file anew) and waits like compose_up until every service is running and healthy.
DeployReport restart_services(remote::Session& session, const ComposeFacts& facts,
                              const ComposeOptions& options,
                              const std::vector<ServiceState>& services);

} // namespace labctl::deploy
