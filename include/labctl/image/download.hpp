#pragma once
// lab.yaml's `image.url`: a cloud image downloaded over HTTP(S) (Poco, the system CA store) into
// the image cache, verified against a digest before anything uses it, and kept under that digest.
//
// A download resumes a partial file (Range, If-Range), follows redirects (never from https to
// http), and bounds every wait: the connection (connect_timeout) and each read (stall_timeout).
// The cache holds only verified files, each written under its final name by a rename; the partial
// file lives apart (downloads/partial/) and is kept after Ctrl-C or a cut connection, for the next
// run to resume; a wrong digest deletes it. Two runs downloading the same image take turns on a
// lock, and the second finds the first's file.
//
// Errors (labctl::Error): exit 2 for an invalid URL or digest; exit 3 (preflight) for an HTTP
// error status, a redirect loop, a TLS or connection failure, a body cut short (run again: it
// resumes), a wrong digest, a checksum file without the image's line, or an unwritable cache;
// exit 4 (timeout) when the server accepts no connection or sends nothing for stall_timeout;
// exit 130 on Ctrl-C.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace labctl::image {

struct DownloadOptions {
    std::string url;           ///< http://, https:// or file:///
    std::string sha256;        ///< expected digest (64 hex); one of sha256, sha512, checksums_url
    std::string sha512;        ///< expected digest (128 hex)
    std::string checksums_url; ///< SHA256SUMS / SHA512SUMS naming the URL's file
    std::string format = "qcow2";    ///< the cached file's suffix
    std::filesystem::path cache_dir; ///< default: the image cache of `labctl image build`
    std::chrono::milliseconds connect_timeout = std::chrono::seconds(20);
    std::chrono::milliseconds stall_timeout = std::chrono::seconds(60);
    int max_redirects = 10;
};

struct DownloadedImage {
    std::filesystem::path path; ///< <cache>/downloads/<algorithm>-<hex>.<format>
    std::string algorithm;      ///< "sha256" or "sha512"
    std::string hex;            ///< the verified digest
    std::uint64_t size_bytes = 0;
    bool cached = false;              ///< found in the cache: nothing was downloaded
    std::uint64_t resumed_from = 0;   ///< bytes of an earlier partial download kept
    std::uint64_t bytes_received = 0; ///< body bytes this run received
    double seconds = 0;               ///< time spent receiving
    std::string final_url;            ///< after redirects
};

/// Downloads (or finds in the cache) the image `options` names; see the top of this header.
DownloadedImage download(const DownloadOptions& options);

/// The cached file for `options` when its digest is known without the network (sha256 or
/// sha512 given) and the file is there; nullopt otherwise. Never downloads.
std::optional<DownloadedImage> find_downloaded(const DownloadOptions& options);

} // namespace labctl::image
