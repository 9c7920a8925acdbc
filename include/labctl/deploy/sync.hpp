#pragma once
// Syncing the stack directory to the target with the system rsync over the lab's ssh config
// (pinned known_hosts, strict host key checking; ControlPath=none, so no master connection
// outlives it). A second sync with nothing changed transfers nothing.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace labctl::deploy {

struct SyncOptions {
    std::string local_dir;  ///< the stack directory; its contents go to remote_dir
    std::string remote_dir; ///< absolute path on the target
    std::string ssh_config; ///< written by labctl (cli::write_ssh_config)
    std::string host_alias; ///< Host entry in ssh_config
    bool sudo = true;       ///< create/write remote_dir through `sudo -n` (non-root users)
    bool dry_run = false;
    std::vector<std::string> excludes{".git/",         "build/", "build-*/", ".labctl/",
                                      "node_modules/", "*.swp",  ".DS_Store"};
};

struct SyncReport {
    std::vector<std::string> changes; ///< rsync --itemize-changes lines (what changed)
    std::uint64_t files_transferred = 0;
    std::uint64_t bytes_sent = 0;
    std::uint64_t total_files = 0;
    std::chrono::milliseconds elapsed{0};
    bool dry_run = false;
};

/// The rsync command line (pure, for tests and --dry-run explanations).
std::vector<std::string> rsync_argv(const SyncOptions& options);

/// Parses rsync's --itemize-changes and --stats output.
SyncReport parse_rsync_output(const std::string& out);

/// Runs rsync; throws Error(deploy) with rsync's message on failure.
SyncReport sync(const SyncOptions& options);

} // namespace labctl::deploy
