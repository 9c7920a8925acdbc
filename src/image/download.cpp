#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include <labctl/core/encoding.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/fd.hpp>
#include <labctl/core/file.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/progress.hpp>
#include <labctl/core/signals.hpp>
#include <labctl/image/checksums.hpp>
#include <labctl/image/download.hpp>

#include "cache_lock.hpp"
#include "http_source.hpp"

namespace labctl::image {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t k_chunk = 256 * 1024;
/// A checksum file is a few lines per image; anything larger is not one.
constexpr std::size_t k_max_checksums_bytes = 4 * 1024 * 1024;

Error cache_error(const std::string& what, const fs::path& path, int err) {
    return Error(ExitCode::preflight,
                 fmt::format("{} {}: {}", what, path.string(), std::strerror(err)),
                 "check the image cache's free space and permissions (--cache-dir)");
}

SourceOptions source_options(const DownloadOptions& o) {
    return {o.connect_timeout, o.stall_timeout, o.max_redirects};
}

bool lower_hex_of(const std::string& s, std::size_t n) {
    return s.size() == n && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

void validate(const DownloadOptions& o) {
    const int given = !o.sha256.empty() + !o.sha512.empty() + !o.checksums_url.empty();
    if (given != 1)
        throw usage_error(fmt::format("the image {} needs exactly one of sha256, sha512 and a "
                                      "checksums URL ({} given)",
                                      o.url, given),
                          "e.g. image.checksums: https://cloud.debian.org/images/cloud/bookworm/"
                          "latest/SHA512SUMS");
    if (!o.sha256.empty() && !lower_hex_of(o.sha256, 64))
        throw usage_error(fmt::format("'{}' is not a SHA-256 digest", o.sha256),
                          "64 lowercase hex characters, as sha256sum prints");
    if (!o.sha512.empty() && !lower_hex_of(o.sha512, 128))
        throw usage_error(fmt::format("'{}' is not a SHA-512 digest", o.sha512),
                          "128 lowercase hex characters, as sha512sum prints");
    if (o.format.empty() || o.format.find('/') != std::string::npos)
        throw usage_error(fmt::format("'{}' is not an image format", o.format), "qcow2 or raw");
}

fs::path downloads_dir(const DownloadOptions& o) {
    return fs::absolute(o.cache_dir.empty() ? process_cache_dir() : o.cache_dir) / "downloads";
}

/// The digest the image must have: given, or read from the checksum file (small, into memory).
ExpectedDigest expected_digest(const DownloadOptions& o) {
    if (!o.sha256.empty())
        return {"sha256", o.sha256};
    if (!o.sha512.empty())
        return {"sha512", o.sha512};
    auto body = open_source(o.checksums_url, 0, {}, source_options(o));
    std::string text;
    std::vector<char> buf(64 * 1024);
    while (const auto n = body->read(buf.data(), buf.size())) {
        text.append(buf.data(), n);
        if (text.size() > k_max_checksums_bytes)
            throw Error(ExitCode::preflight,
                        fmt::format("{} is larger than {} bytes: not a checksum file",
                                    o.checksums_url, k_max_checksums_bytes),
                        "image.checksums names the SHA256SUMS or SHA512SUMS file beside the image");
    }
    const auto name = url_file_name(o.url);
    if (auto d = find_checksum(text, name, checksums_algorithm(o.checksums_url)))
        return *d;
    const auto names = checksum_names(text, 5);
    std::string listed;
    for (const auto& n : names)
        listed += (listed.empty() ? "" : ", ") + n;
    throw Error(ExitCode::preflight, fmt::format("{} has no line for '{}'", body->final_url, name),
                listed.empty() ? std::string("the file lists no checksums at all: check the URL")
                               : fmt::format("it lists {}{}: check image.url's file name", listed,
                                             names.size() == 5 ? ", ..." : ""));
}

/// What a partial download was fetched from, so a resume asks the same server the same way.
struct PartialMeta {
    std::string url;
    std::string validator;
};

std::optional<PartialMeta> read_meta(const fs::path& path) {
    std::error_code ec;
    if (!fs::exists(path, ec))
        return std::nullopt;
    try {
        const auto j = nlohmann::json::parse(read_file(path.string()));
        return PartialMeta{j.at("url").get<std::string>(), j.at("validator").get<std::string>()};
    } catch (const std::exception&) {
        return std::nullopt; // unreadable: the partial file is not trusted, it starts over
    }
}

void write_all(int fd, const char* data, std::size_t n, const fs::path& path) {
    while (n > 0) {
        const ssize_t w = ::write(fd, data, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            throw cache_error("cannot write", path, errno);
        data += w;
        n -= static_cast<std::size_t>(w);
    }
}

/// Hashes the first `bytes` of `path`; false when they cannot all be read.
bool hash_prefix(const fs::path& path, std::uint64_t bytes, Digest& digest) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.fd < 0)
        return false;
    std::vector<char> buf(1 << 20);
    while (bytes > 0) {
        const ssize_t n = ::read(fd.fd, buf.data(), std::min<std::uint64_t>(bytes, buf.size()));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        digest.update(std::string_view(buf.data(), static_cast<std::size_t>(n)));
        bytes -= static_cast<std::uint64_t>(n);
        signals::check();
    }
    return true;
}

/// The live line and the event lines of one download: a bar on a terminal, a line per 10 %
/// elsewhere (every 10 s when the length is unknown).
class DownloadProgress {
public:
    explicit DownloadProgress(const std::string& name) : m_progress("download " + name) {}
    void bytes(std::uint64_t have, std::uint64_t received, std::optional<std::uint64_t> total) {
        const std::string rate = format_bytes(m_progress.rate(received)) + "/s";
        if (!total || *total == 0) {
            m_progress.update(fmt::format("{}, {}", format_bytes(have), rate),
                              {{"bytes", std::to_string(have)}});
            return;
        }
        const auto percent = static_cast<int>(have * 100 / *total);
        if (log::live_status()) {
            const int filled = percent / 5;
            m_progress.show(fmt::format("[{}{}] {:3d}% {} of {}, {}", std::string(filled, '#'),
                                        std::string(20 - filled, '.'), percent, format_bytes(have),
                                        format_bytes(*total), rate));
            return;
        }
        if (percent / 10 > m_last_tenth) {
            m_last_tenth = percent / 10;
            m_progress.event(
                fmt::format("{}% ({} of {}, {})", m_last_tenth * 10, format_bytes(have),
                            format_bytes(*total), rate),
                {{"bytes", std::to_string(have)}, {"total_bytes", std::to_string(*total)}});
        }
    }
    void event(const std::string& text) { m_progress.event(text); }
    void start_at(std::uint64_t have, std::optional<std::uint64_t> total) {
        if (total && *total > 0)
            m_last_tenth = static_cast<int>(have * 10 / *total);
    }

private:
    Progress m_progress;
    int m_last_tenth = 0;
};

struct Attempt {
    std::uint64_t resumed_from = 0;
    std::uint64_t received = 0;
    std::uint64_t size = 0;
    double seconds = 0;
    std::string final_url;
    std::string hex;
};

/// One pass: resume `part` when `resume` and its meta allow, else start over; fills the file to
/// its end and returns its digest. The partial file stays when this throws (for the next run).
Attempt fetch_into(const DownloadOptions& o, const ExpectedDigest& want, const fs::path& part,
                   const fs::path& meta_path, bool resume) {
    Attempt a;
    std::error_code ec;
    std::uint64_t offset = 0;
    std::string if_range;
    Digest digest(want.algorithm);
    if (resume && fs::exists(part, ec)) {
        const auto meta = read_meta(meta_path);
        const auto size = fs::file_size(part, ec);
        if (meta && meta->url == o.url && !ec && size > 0 && hash_prefix(part, size, digest)) {
            offset = size;
            if_range = meta->validator;
        } else {
            digest = Digest(want.algorithm);
        }
    }
    std::unique_ptr<BodySource> body;
    try {
        body = open_source(o.url, offset, if_range, source_options(o));
    } catch (const RangeNotSatisfiable&) {
        log::warn("image: the partial download of {} is longer than the file: starting over",
                  o.url);
        offset = 0;
        digest = Digest(want.algorithm);
        body = open_source(o.url, 0, {}, source_options(o));
    }
    if (offset > 0 && body->start == 0) {
        log::info("image: {} sent the whole file (it changed, or the server does not resume): "
                  "starting over",
                  body->final_url);
        offset = 0;
        digest = Digest(want.algorithm);
    }
    a.resumed_from = offset;
    a.final_url = body->final_url;
    write_file_atomic(meta_path.string(),
                      nlohmann::json{{"url", o.url}, {"validator", body->validator}}.dump() + "\n");

    Fd fd(::open(part.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    if (fd.fd < 0)
        throw cache_error("cannot open", part, errno);
    if (::ftruncate(fd.fd, static_cast<off_t>(offset)) != 0)
        throw cache_error("cannot truncate", part, errno);
    if (::lseek(fd.fd, static_cast<off_t>(offset), SEEK_SET) < 0)
        throw cache_error("cannot seek in", part, errno);

    DownloadProgress progress(url_file_name(o.url));
    if (offset > 0)
        progress.event(fmt::format("resuming at {} of {}", format_bytes(offset),
                                   body->total ? format_bytes(*body->total) : "?"));
    progress.start_at(offset, body->total);
    const auto started = std::chrono::steady_clock::now();
    std::vector<char> buf(k_chunk);
    std::uint64_t have = offset;
    while (const auto n = body->read(buf.data(), buf.size())) {
        write_all(fd.fd, buf.data(), n, part);
        digest.update(std::string_view(buf.data(), n));
        have += n;
        a.received += n;
        progress.bytes(have, a.received, body->total);
    }
    a.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (body->total && have != *body->total)
        throw Error(
            ExitCode::preflight,
            fmt::format("{} ended after {} of {} bytes", body->final_url, have, *body->total),
            "run again: the download resumes where it stopped");
    if (::fsync(fd.fd) != 0)
        throw cache_error("cannot sync", part, errno);
    a.size = have;
    a.hex = digest.finish_hex();
    progress.event(fmt::format("{} received in {:.1f} s ({}/s)", format_bytes(a.received),
                               a.seconds,
                               format_bytes(static_cast<std::uint64_t>(
                                   static_cast<double>(a.received) / std::max(a.seconds, 0.001)))));
    return a;
}

void remove_partial(const fs::path& part, const fs::path& meta) {
    std::error_code ec;
    fs::remove(part, ec);
    fs::remove(meta, ec);
}

DownloadedImage cached_result(const fs::path& path, const ExpectedDigest& d) {
    DownloadedImage r;
    r.path = path;
    r.algorithm = d.algorithm;
    r.hex = d.hex;
    std::error_code ec;
    r.size_bytes = fs::file_size(path, ec);
    r.cached = true;
    return r;
}

} // namespace

std::optional<DownloadedImage> find_downloaded(const DownloadOptions& options) {
    validate(options);
    if (!options.checksums_url.empty())
        return std::nullopt;
    const auto want = expected_digest(options);
    const auto path =
        downloads_dir(options) / fmt::format("{}-{}.{}", want.algorithm, want.hex, options.format);
    std::error_code ec;
    if (!fs::is_regular_file(path, ec))
        return std::nullopt;
    return cached_result(path, want);
}

DownloadedImage download(const DownloadOptions& options) {
    validate(options);
    const auto want = expected_digest(options);
    const auto dir = downloads_dir(options);
    const auto name = fmt::format("{}-{}.{}", want.algorithm, want.hex, options.format);
    const auto final_path = dir / name;
    std::error_code ec;
    if (fs::is_regular_file(final_path, ec)) {
        log::info("image: {} is cached ({})", url_file_name(options.url), final_path.string());
        return cached_result(final_path, want);
    }
    fs::create_directories(dir / "partial", ec);
    if (ec)
        throw cache_error("cannot create", dir / "partial", ec.value());
    // The lock lives beside the partial file: the cache itself holds only verified images.
    EntryLock lock(dir / "partial" / (name + ".lock"), "downloading the same image");
    if (fs::is_regular_file(final_path, ec)) { // the other run finished it meanwhile
        log::info("image: {} is cached ({})", url_file_name(options.url), final_path.string());
        return cached_result(final_path, want);
    }
    const auto part = dir / "partial" / (name + ".part");
    const auto meta = dir / "partial" / (name + ".json");
    const auto attempt = [&](bool resume) {
        try {
            return fetch_into(options, want, part, meta, resume);
        } catch (const Error&) {
            std::error_code ignored;
            if (const auto kept = fs::file_size(part, ignored); !ignored && kept > 0)
                log::info("image: kept {} of the download in {}: the next run resumes it",
                          format_bytes(kept), part.string());
            throw;
        }
    };
    Attempt a = attempt(true);
    if (a.hex != want.hex && a.resumed_from > 0) {
        // The kept part may come from another version of a file at the same URL (a server that
        // has no validator cannot say): one more try, whole.
        log::warn("image: {} does not match its {} after resuming: downloading it whole",
                  options.url, want.algorithm);
        a = attempt(false);
    }
    if (a.hex != want.hex) {
        remove_partial(part, meta);
        throw Error(ExitCode::preflight,
                    fmt::format("{} has {} {}, but {} says {}", a.final_url, want.algorithm, a.hex,
                                options.checksums_url.empty()
                                    ? fmt::format("image.{}", want.algorithm)
                                    : options.checksums_url,
                                want.hex),
                    "the download was deleted: check that the URL and the checksum name the "
                    "same file (a 'latest' URL moves; image.checksums follows it)");
    }
    if (::rename(part.c_str(), final_path.c_str()) != 0)
        throw cache_error("cannot move the download to", final_path, errno);
    fs::remove(meta, ec);
    if (Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)); d.fd >= 0)
        (void)::fsync(d.fd); // the rename survives a crash; a failure here loses nothing
    log::info("image: {} verified ({} {}) and cached as {}", url_file_name(options.url),
              want.algorithm, want.hex.substr(0, 16), final_path.string());
    DownloadedImage r = cached_result(final_path, want);
    r.cached = false;
    r.resumed_from = a.resumed_from;
    r.bytes_received = a.received;
    r.seconds = a.seconds;
    r.final_url = a.final_url;
    return r;
}

} // namespace labctl::image
