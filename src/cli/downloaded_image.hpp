#pragma once
// lab.yaml's `image.url`: the download provision asks for when (and only when) a base volume must
// be uploaded, so a lab whose base volume exists never touches the network.

#include <functional>
#include <string>

#include <labctl/config/lab_spec.hpp>
#include <labctl/image/download.hpp>

namespace labctl::cli {

/// The download options image.url, sha256/sha512/checksums and format ask for.
image::DownloadOptions download_options(const config::ImageSpec& image);

/// Empty unless image.url is set (and image.path is not); else a function that downloads the
/// image into the cache (or finds it there) once, also when several hosts call it at once, and
/// returns its path.
std::function<std::string()> image_fetcher(const config::ImageSpec& image);

} // namespace labctl::cli
