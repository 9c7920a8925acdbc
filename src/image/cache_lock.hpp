#pragma once
// What the image cache's users share (the build and the download): an exclusive lock per cache
// entry and the cache directory's default from the caller's environment.

#include <filesystem>
#include <string_view>

namespace labctl::image {

/// An exclusive flock on `path` (created when missing), so two runs filling the same cache entry
/// take turns; waiting for it says so once (`waiting_for`) and still honours Ctrl-C.
class EntryLock {
public:
    EntryLock(const std::filesystem::path& path, std::string_view waiting_for);
    EntryLock(const EntryLock&) = delete;
    EntryLock& operator=(const EntryLock&) = delete;
    ~EntryLock();

private:
    int m_fd = -1;
};

/// default_cache_dir() for this process (root or not, XDG_CACHE_HOME, HOME).
std::filesystem::path process_cache_dir();

} // namespace labctl::image
