#include "downloaded_image.hpp"

#include <memory>
#include <mutex>

namespace labctl::cli {

image::DownloadOptions download_options(const config::ImageSpec& image) {
    image::DownloadOptions o;
    o.url = image.url;
    o.sha256 = image.sha256;
    o.sha512 = image.sha512;
    o.checksums_url = image.checksums;
    o.format = image.format;
    return o;
}

std::function<std::string()> image_fetcher(const config::ImageSpec& image) {
    if (image.url.empty() || !image.path.empty())
        return {};
    struct Once {
        std::mutex mutex;
        std::string path; // empty until a download succeeded; a failed one is tried again
    };
    auto once = std::make_shared<Once>();
    return [once, o = download_options(image)] {
        std::lock_guard lock(once->mutex);
        if (once->path.empty())
            once->path = image::download(o).path.string();
        return once->path;
    };
}

} // namespace labctl::cli
