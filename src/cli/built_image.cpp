#include "built_image.hpp"

#include <labctl/core/log.hpp>
#include <labctl/image/build.hpp>

namespace labctl::cli {

bool resolve_built_image(config::LabSpec& spec, ImageNeed need) {
    if (!spec.image.build)
        return true;
    image::BuildOptions o;
    o.suite = spec.image.build->suite;
    o.extra_packages = spec.image.build->packages;
    std::optional<image::BuiltImage> built;
    if (need == ImageNeed::build)
        built = image::build(o);
    else
        built = image::find_cached(o);
    if (!built)
        return false;
    spec.image.path = built->disk.string();
    spec.image.kernel = built->kernel.string();
    spec.image.initrd = built->initrd.string();
    spec.image.cmdline = built->cmdline;
    spec.image.sha256 = built->sha256;
    spec.image.format = "qcow2";
    log::debug("image: labctl-built {} ({}, sha256 {})", spec.image.path,
               built->cached ? "cached" : "built now", built->sha256.substr(0, 16));
    return true;
}

} // namespace labctl::cli
