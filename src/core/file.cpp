#include <fcntl.h>
#include <fmt/format.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <labctl/core/encoding.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/fd.hpp>
#include <labctl/core/file.hpp>

namespace labctl {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const std::string& what, const std::string& path) {
    const int err = errno;
    // This host cannot hold the file (permissions, a full disk): a preflight failure, not a bug.
    throw Error(ExitCode::preflight, fmt::format("{} {}: {}", what, path, std::strerror(err)),
                "check the directory's permissions and free space");
}

/// A unique temporary beside `path`, written completely and fsynced; returns its name.
std::string write_temporary(const std::string& path, const std::string& content, mode_t mode) {
    std::string tmp = path + ".tmp.XXXXXX";
    Fd fd(::mkstemp(tmp.data()));
    if (fd.fd < 0)
        fail("cannot create a temporary file for", path);
    const auto cleanup_and_fail = [&](const std::string& what) {
        const int err = errno;
        ::unlink(tmp.c_str());
        errno = err;
        fail(what, tmp);
    };
    if (::fchmod(fd.fd, mode) != 0)
        cleanup_and_fail("cannot set the mode of");
    for (std::size_t done = 0; done < content.size();) {
        const ssize_t n = ::write(fd.fd, content.data() + done, content.size() - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            cleanup_and_fail("cannot write");
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd.fd) != 0)
        cleanup_and_fail("cannot fsync");
    const int raw = fd.fd;
    fd.fd = -1;
    if (::close(raw) != 0) // NFS and some file systems report write errors only here
        cleanup_and_fail("cannot close");
    return tmp;
}

void fsync_directory(const std::string& path) {
    auto dir = fs::path(path).parent_path();
    if (dir.empty())
        dir = ".";
    Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.fd < 0 || ::fsync(fd.fd) != 0)
        fail("cannot fsync the directory", dir.string());
}

} // namespace

void write_file_atomic(const std::string& path, const std::string& content, mode_t mode) {
    const auto tmp = write_temporary(path, content, mode);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        errno = err;
        fail("cannot rename a temporary file to", path);
    }
    fsync_directory(path);
}

bool create_file_exclusive(const std::string& path, const std::string& content, mode_t mode) {
    const auto tmp = write_temporary(path, content, mode);
    const int rc = ::link(tmp.c_str(), path.c_str());
    const int err = errno;
    ::unlink(tmp.c_str());
    if (rc != 0) {
        if (err == EEXIST)
            return false;
        errno = err;
        fail("cannot create", path);
    }
    fsync_directory(path);
    return true;
}

std::string random_token(std::size_t bytes) {
    std::string raw(bytes, '\0');
    for (std::size_t done = 0; done < bytes;) {
        const ssize_t n = ::getrandom(raw.data() + done, bytes - done, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fail("cannot read random bytes for", "a secret");
        done += static_cast<std::size_t>(n);
    }
    std::string text = base64_encode(raw, false);
    for (auto& c : text)
        c = c == '+' ? '-' : c == '/' ? '_' : c; // base64url: safe in env files and shells
    return text;
}

} // namespace labctl
