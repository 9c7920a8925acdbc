#pragma once
// Fingerprints of the stack tree rsync sends, here and on the target, so that a deploy can tell
// "nothing changed on either side" without running rsync. The two sides hash differently (here
// C++, there a shell pipeline): each is only ever compared with its own earlier value.

#include <string>
#include <vector>

#include <labctl/deploy/compose_env.hpp>

namespace labctl::deploy {

/// Whether rsync's --exclude `pattern` (no '/' inside; a trailing '/' matches directories only)
/// excludes the entry `name` (pure). Matching is fnmatch(3) on the entry's own name, as rsync
/// does for such patterns at any depth.
bool excluded(const std::string& name, bool is_directory, const std::vector<std::string>& patterns);

/// SHA-256 (hex) over the tree under `dir` as rsync sends it: every entry not excluded, in path
/// order, with its type, permission bits and path; a file's content digest, a symlink's target.
/// Throws Error(usage) naming the path when an entry cannot be read.
std::string local_tree_fingerprint(const std::string& dir,
                                   const std::vector<std::string>& excludes);

/// Shell text printing one SHA-256 (hex) over the target's copy under `remote_dir` with the same
/// excludes (GNU find, sort, sha256sum), or "absent" when the directory is missing (pure).
std::string remote_tree_fingerprint_command(const std::string& remote_dir,
                                            const std::vector<std::string>& excludes);

/// The stack directory's top-level files compose reads by itself, sorted: *compose*.yml,
/// *compose*.yaml and .env. Throws Error(usage) when the directory cannot be read.
std::vector<std::string> compose_input_files(const std::string& dir);

/// SHA-256 (hex) of what `compose config` reads: the stack directory's top-level compose files
/// (*compose*.yml, *compose*.yaml), .env, and the variables and secrets labctl passes. Secrets
/// enter only through this digest.
std::string compose_inputs_fingerprint(const std::string& dir, const ComposeEnv& env);

/// SHA-256 (hex) of the variables and secrets (a secret is never stored, only this digest).
std::string env_fingerprint(const ComposeEnv& env);

} // namespace labctl::deploy
