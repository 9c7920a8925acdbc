#pragma once
// Preloading images onto an air-gapped target: `docker save` on this machine streamed over the SSH
// channel into `docker load` on the target, skipping the images the target already has with the
// same id. The missing ones go in one stream, so layers they share (a common base) travel once.
// When the target holds some of their layers already (an older build on the same base), the
// archive is saved to a file here first and sent without those layer files (saved_archive.hpp);
// otherwise it streams straight from `docker save`, touching no disk.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <labctl/deploy/compose.hpp>

namespace labctl::remote {
class Session;
}

namespace labctl::deploy {

/// The default deadline of the one `docker load` stream (a few GB over a slow link fit).
inline constexpr std::chrono::seconds k_default_load_timeout{60 * 60};

struct PreloadOptions {
    /// Images to send, or the single entry "auto": every image the synced compose file names
    /// (resolved on the target by `compose config`, so variables expand as they will for `up`).
    std::vector<std::string> images;
    std::string remote_dir;      ///< the synced stack (for "auto")
    std::string project = "lab"; ///< compose project name (for "auto")
    ComposeEnv env;              ///< compose variables and secrets (for "auto")
    std::string log_prefix;
    bool sudo = true;
    /// Deadline of the `docker load` stream on the target (lab.yaml `deploy.preload_timeout`).
    /// At the deadline the remote `docker load` is ended with its process group and
    /// preload_images throws Error(timeout) naming the phase "docker load".
    std::chrono::seconds load_timeout = k_default_load_timeout;
    /// What "auto" resolved to when the compose inputs are those of the last deploy (its
    /// record): `compose config` is not run again.
    std::optional<std::vector<std::string>> auto_resolved;
    /// Where the archive is saved when layers are left out (the lab's state directory); "" =
    /// the system's temporary directory. The file is removed when the preload ends.
    std::string work_dir;
};

enum class PreloadAction {
    sent,           ///< streamed to the target and loaded
    present,        ///< the target already has this image with the same id
    missing_locally ///< "auto" named it but this machine's Docker lacks it (the target must pull
                    ///< or build it)
};

struct PreloadedImage {
    std::string image;
    std::string id; ///< local image id ("sha256:…"), empty when missing locally
    PreloadAction action = PreloadAction::sent;
};

struct PreloadReport {
    std::vector<PreloadedImage> images;
    std::uint64_t bytes_sent = 0;    ///< the `docker save` stream of every image sent
    std::uint64_t bytes_skipped = 0; ///< layer files left out: the target had them
    std::chrono::milliseconds elapsed{0};
};

/// The `image:` values of the services in `compose config` output, in order, without
/// duplicates (pure).
std::vector<std::string> parse_compose_images(const std::string& config_yaml);

/// This machine's Docker's id of `image` ("sha256:…"), "" when it lacks it.
std::string local_image_id(const std::string& image);

/// "nginx:latest" for "nginx", "docker.io/library/nginx" and "nginx:latest" (pure).
std::string normal_image_name(const std::string& name);

/// The ids of `images` in `docker image ls --format '{{.Repository}}:{{.Tag}} {{.ID}}'` output,
/// "" for one it does not list (pure).
std::vector<std::string> parse_image_list(const std::string& out,
                                          const std::vector<std::string>& images);

/// Name of a PreloadAction for reports ("sent", "present", "missing locally").
std::string to_string(PreloadAction action);

/// Sends the images. Throws Error(deploy) when an explicitly listed image is missing locally, when
/// there is no local Docker, or when `docker save`/`docker load` fails (with its message), and
/// Error(timeout) when `docker load` outlives `options.load_timeout`.
PreloadReport preload_images(remote::Session& session, const ComposeFacts& facts,
                             const PreloadOptions& options);

} // namespace labctl::deploy
