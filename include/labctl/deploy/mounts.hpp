#pragma once
// What a file changed by the sync reaches on the target. A service that bind-mounts it must be
// restarted: rsync writes a new file and renames it over the old one, and a container keeps the
// inode it mounted at its start, so without a restart it goes on reading the old content, and
// compose sees no change in its own inputs (`up` says "up-to-date"). An image built from the
// stack (`build:`) must be built again, which only the full deploy's `up --build` does.

#include <string>
#include <vector>

#include <labctl/deploy/compose.hpp>

namespace labctl::deploy {

/// The absolute target paths that rsync's --itemize-changes lines name (sent, created, deleted,
/// or with changed attributes), without a trailing slash (pure).
std::vector<std::string> changed_paths(const std::vector<std::string>& itemized,
                                       const std::string& remote_dir);

/// Whether a bind-mount source reaches a changed path: the same path, a path under a mounted
/// directory, or a mounted path under a changed directory (pure).
bool mount_reaches(const std::string& source, const std::string& changed);

/// The services among `states` with a mount that reaches one of `changed` (pure).
std::vector<ServiceState> services_mounting(const std::vector<ServiceState>& states,
                                            const std::vector<std::string>& changed);

/// Whether `service`'s reload signal is enough for `changed`: it has one, and every changed path
/// it mounts lies strictly under a mounted directory (a new file there is seen by path). A file
/// mounted by itself, or a mounted path inside a changed directory, keeps the old inode until a
/// restart (pure).
bool reload_suffices(const ServiceState& service, const std::vector<std::string>& changed);

/// Whether a compose file in `stack_dir` (the files compose_inputs_fingerprint reads) builds an
/// image (a `build:` key): then a changed file may belong to a build context.
bool compose_builds_images(const std::string& stack_dir);

} // namespace labctl::deploy
