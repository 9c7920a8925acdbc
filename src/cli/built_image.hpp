#pragma once
// lab.yaml's `image.build`: the CLI runs `labctl image build` (or finds its cached result) and
// points the spec's image at it, so provision, plan and down see an ordinary direct-boot image.

#include <labctl/config/lab_spec.hpp>

namespace labctl::cli {

enum class ImageNeed {
    build,      ///< build it when it is not cached yet (provision, up)
    cached_only ///< never build (plan, down): false when it is not built yet
};

/// No-op (true) unless spec.image.build is set; then fills image.path, kernel, initrd, cmdline,
/// sha256 and format from the built image.
bool resolve_built_image(config::LabSpec& spec, ImageNeed need);

} // namespace labctl::cli
