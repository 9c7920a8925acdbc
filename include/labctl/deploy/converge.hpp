#pragma once
// Converging instead of re-deploying: after a successful deploy labctl records on the target
// what it applied (<remote_dir>/.labctl/deployed.json, root-only; rsync's excludes keep it) and
// what it then observed (the synced tree's digest, each service's container and image). The next
// deploy proves in one SSH round trip that its inputs and the target still match the record; any
// difference (a changed local file, a file edited on the target, a container stopped, replaced
// or removed, changed variables or images) is drift, and drift means the full deploy runs.

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include <labctl/deploy/compose.hpp>

namespace labctl::remote {
class Session;
}

namespace labctl::deploy {

/// The inputs of a deploy, each a digest or a value from this machine.
struct DeployInputs {
    std::string labctl_version;
    std::string project;
    std::string remote_dir;
    std::string tree;           ///< local_tree_fingerprint of the stack directory
    std::string env;            ///< env_fingerprint of the variables and secrets
    std::string compose_inputs; ///< compose_inputs_fingerprint
    /// Preloaded images and their local ids ("" = missing locally), when the record's image list
    /// still applies.
    std::map<std::string, std::string> images;
};

/// What the last successful deploy applied and observed.
struct DeployRecord {
    static constexpr int k_format = 1;
    DeployInputs inputs;
    std::string remote_tree; ///< the target's tree digest right after that deploy
    std::string compose_flavor, compose_version;
    std::vector<std::string> auto_images; ///< what "auto" resolved to (for compose_inputs)
    std::vector<ServiceState> services;
    std::string applied_at; ///< UTC, ISO 8601
};

nlohmann::json to_json(const DeployRecord& record);
/// nullopt when the text is not a record of this format.
std::optional<DeployRecord> record_from_json(const std::string& text);

/// <remote_dir>/.labctl/deployed.json
std::string record_path(const std::string& remote_dir);

/// What one round trip to the target shows.
struct TargetObservation {
    std::optional<DeployRecord> record;
    bool record_present = false; ///< a file was there (it may not parse)
    std::string remote_tree;     ///< digest, or "absent"
    std::vector<ServiceState> containers;
    bool compose_v2 = false;     ///< the compose plugin is installed
    bool compose_v1 = false;     ///< docker-compose is on PATH
    bool docker_answered = true; ///< `docker ps` worked (else drift: the full deploy says why)
};

/// The shell script of the round trip (read-only) (pure).
std::string observe_command(const std::string& remote_dir, const std::string& project,
                            const std::vector<std::string>& excludes);
/// Parses its output; throws Error(deploy) when the output is cut short.
TargetObservation parse_observation(const std::string& out);
/// Runs it (with sudo for a non-root user); throws Error(deploy) when it fails.
TargetObservation observe(remote::Session& session, const std::string& remote_dir,
                          const std::string& project, const std::vector<std::string>& excludes,
                          bool sudo);

/// The differences between the record, today's inputs and what the target shows, each a
/// sentence; empty means converged (pure).
std::vector<std::string> drift(const TargetObservation& seen, const DeployInputs& now);

/// True when the only drift is files of the stack directory changed here: the target's tree,
/// containers, compose, variables, secrets and images all match the record. Then syncing and
/// restarting the services that mount a changed file is the whole repair (pure).
bool only_stack_files_changed(const TargetObservation& seen, const DeployInputs& now);

/// Writes the record on the target (0600, via sudo for a non-root user), its remote_tree the
/// digest the target computes of its tree now (one round trip). Throws Error(deploy).
void write_record(remote::Session& session, const std::string& remote_dir,
                  const DeployRecord& record, const std::vector<std::string>& excludes, bool sudo);

} // namespace labctl::deploy
