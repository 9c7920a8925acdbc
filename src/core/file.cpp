#include <fcntl.h>
#include <fmt/format.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <vector>

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

/// Writes all of `data` to `fd` (the temporary `tmp`).
void write_all(int fd, const char* data, std::size_t size, const std::string& tmp) {
    for (std::size_t done = 0; done < size;) {
        const ssize_t n = ::write(fd, data + done, size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fail("cannot write", tmp);
        done += static_cast<std::size_t>(n);
    }
}

/// A unique temporary beside `path` with mode `mode`, filled by `fill(fd, name)` (which throws on
/// failure), fsynced and closed; returns its name. Any failure removes it again.
std::string write_temporary(const std::string& path, mode_t mode,
                            const std::function<void(int, const std::string&)>& fill) {
    std::string tmp = path + ".tmp.XXXXXX";
    Fd fd(::mkstemp(tmp.data()));
    if (fd.fd < 0)
        fail("cannot create a temporary file for", path);
    try {
        if (::fchmod(fd.fd, mode) != 0)
            fail("cannot set the mode of", tmp);
        fill(fd.fd, tmp);
        if (::fsync(fd.fd) != 0)
            fail("cannot fsync", tmp);
        const int raw = fd.fd;
        fd.fd = -1;
        if (::close(raw) != 0) // NFS and some file systems report write errors only here
            fail("cannot close", tmp);
    } catch (...) {
        ::unlink(tmp.c_str());
        throw;
    }
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

/// Renames the complete temporary `tmp` over `path` (removing it when that fails), then fsyncs
/// the directory so the rename itself survives a crash.
void rename_into_place(const std::string& tmp, const std::string& path) {
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        errno = err;
        fail("cannot rename a temporary file to", path);
    }
    fsync_directory(path);
}

} // namespace

void write_file_atomic(const std::string& path, const std::string& content, mode_t mode) {
    const auto tmp = write_temporary(path, mode, [&](int fd, const std::string& name) {
        write_all(fd, content.data(), content.size(), name);
    });
    rename_into_place(tmp, path);
}

bool create_file_exclusive(const std::string& path, const std::string& content, mode_t mode) {
    const auto tmp = write_temporary(path, mode, [&](int fd, const std::string& name) {
        write_all(fd, content.data(), content.size(), name);
    });
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

void copy_file_atomic(const std::string& from, const std::string& to) {
    Fd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    if (in.fd < 0 || ::fstat(in.fd, &st) != 0)
        fail("cannot read", from);
    if (!S_ISREG(st.st_mode))
        throw Error(ExitCode::preflight, fmt::format("cannot copy {}: not a regular file", from));
    const auto tmp = write_temporary(to, st.st_mode & 07777, [&](int fd, const std::string& name) {
        std::vector<char> buf(1 << 20);
        for (;;) {
            const ssize_t n = ::read(in.fd, buf.data(), buf.size());
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                fail("cannot read", from);
            if (n == 0)
                return;
            write_all(fd, buf.data(), static_cast<std::size_t>(n), name);
        }
    });
    rename_into_place(tmp, to);
}

std::string read_file(const std::string& path) {
    const auto fail_read = [&path] {
        throw Error(ExitCode::usage, fmt::format("cannot read {}: {}", path, std::strerror(errno)));
    };
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.fd < 0)
        fail_read();
    std::string out;
    std::array<char, 65536> buf{};
    for (;;) {
        const ssize_t n = ::read(fd.fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            fail_read();
        if (n == 0)
            return out;
        out.append(buf.data(), static_cast<std::size_t>(n));
    }
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
