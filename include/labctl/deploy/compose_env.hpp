#pragma once
// What Docker Compose's variable interpolation gets from labctl on the target: plain variables
// (the pin set's image versions, the registry prefix) on the command line, and secrets (Grafana's
// admin password) through the SSH channel's stdin, so that a secret is never in an argv the
// target's `ps` shows, a log line or a file on the target.

#include <map>
#include <optional>
#include <string>

namespace labctl::deploy {

struct ComposeEnv {
    std::map<std::string, std::string> vars;    ///< e.g. IMAGE_REGISTRY, TEMPO_VERSION
    std::map<std::string, std::string> secrets; ///< e.g. GRAFANA_ADMIN_PASSWORD; one line each
};

/// A shell command for the target and the bytes its stdin gets.
struct RemoteCommand {
    std::string command;
    std::optional<std::string> stdin_data;
};

/// `cd <dir> && <secrets read from stdin and exported> && env K=V ... <compose> -p <project>
/// <args>` (pure). `compose` is "docker compose" or "docker-compose"; `args` is shell text.
/// Throws Error(usage) for a variable name that is not an identifier or a secret with a newline.
RemoteCommand compose_command(const std::string& compose, const std::string& remote_dir,
                              const std::string& project, const ComposeEnv& env,
                              const std::string& args);

/// Reads a Compose env file (`KEY=VALUE` lines, `#` comments, blank lines, values optionally in
/// single or double quotes), as `docker compose --env-file` does. Throws Error(usage) naming
/// file:line for a line that is not an assignment, or when the file cannot be read.
std::map<std::string, std::string> read_env_file(const std::string& path);

} // namespace labctl::deploy
