#include "cache_lock.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <thread>

#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/signals.hpp>
#include <labctl/image/recipe.hpp>

namespace labctl::image {

EntryLock::EntryLock(const std::filesystem::path& path, std::string_view waiting_for) {
    m_fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (m_fd < 0)
        throw Error(ExitCode::preflight,
                    fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)),
                    "check that the cache directory is writable");
    bool told = false;
    while (::flock(m_fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            const int err = errno;
            ::close(m_fd);
            throw Error(ExitCode::preflight,
                        fmt::format("cannot lock {}: {}", path.string(), std::strerror(err)),
                        "the cache directory must be on a file system with flock (not NFS)");
        }
        if (!told)
            log::info("image: waiting for another labctl {}", waiting_for);
        told = true;
        try {
            signals::check();
        } catch (...) {
            ::close(m_fd);
            throw;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
}

EntryLock::~EntryLock() {
    ::close(m_fd);
}

std::filesystem::path process_cache_dir() {
    std::map<std::string, std::string> env;
    for (const char* k : {"XDG_CACHE_HOME", "HOME"})
        if (const char* v = std::getenv(k))
            env[k] = v;
    return default_cache_dir(::geteuid() == 0, env);
}

} // namespace labctl::image
