#pragma once
// A read-only FUSE file system of the test's own (header-only, the kernel's FUSE protocol spoken
// over /dev/fuse; no libfuse): one regular file whose reads fail with EIO from a given offset on,
// as a disk with a bad sector does. read(2) on it fails for real in the kernel, so the code under
// test sees exactly what a damaged disk gives it. Needs root (mount) and /dev/fuse; the mount is
// undone and the server thread joined on destruction.

#include <fcntl.h>
#include <linux/fuse.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace labctl::test {

class FaultyFuseFile {
public:
    /// Mounts at `dir` (created) a file system holding only `name`, `size` bytes long; reading
    /// bytes before `fail_from` gives 'L', reading at or past it fails with EIO.
    FaultyFuseFile(std::filesystem::path dir, std::string name, std::uint64_t size,
                   std::uint64_t fail_from)
        : m_dir(std::move(dir)), m_name(std::move(name)), m_size(size), m_fail_from(fail_from) {
        std::filesystem::create_directories(m_dir);
        m_fd = ::open("/dev/fuse", O_RDWR | O_CLOEXEC);
        if (m_fd < 0)
            throw std::runtime_error(std::string("cannot open /dev/fuse: ") + std::strerror(errno));
        const std::string opts =
            "fd=" + std::to_string(m_fd) + ",rootmode=40000,user_id=0,group_id=0,allow_other";
        if (::mount("labctl-fault", m_dir.c_str(), "fuse", MS_NOSUID | MS_NODEV, opts.c_str()) !=
            0) {
            const int e = errno;
            ::close(m_fd);
            throw std::runtime_error(std::string("cannot mount a FUSE file system: ") +
                                     std::strerror(e));
        }
        m_thread = std::thread([this] { serve(); });
    }
    ~FaultyFuseFile() {
        ::umount2(m_dir.c_str(), MNT_DETACH);
        m_stop = true;
        m_thread.join();
        ::close(m_fd); // ends the connection: nothing can block on this file system any more
    }
    FaultyFuseFile(const FaultyFuseFile&) = delete;
    FaultyFuseFile& operator=(const FaultyFuseFile&) = delete;

    std::filesystem::path path() const { return m_dir / m_name; }
    /// Bytes served before the first EIO, and how many reads failed.
    std::uint64_t served() const { return m_served; }
    int eio_replies() const { return m_eio; }

private:
    static constexpr std::uint64_t k_root = FUSE_ROOT_ID;
    static constexpr std::uint64_t k_file = 2;
    static constexpr std::uint32_t k_max_write = 128 * 1024;

    void fill_attr(fuse_attr& a, std::uint64_t node) const {
        a = {};
        a.ino = node;
        if (node == k_root) {
            a.mode = S_IFDIR | 0755;
            a.nlink = 2;
        } else {
            a.mode = S_IFREG | 0444;
            a.nlink = 1;
            a.size = m_size;
            a.blocks = (m_size + 511) / 512;
        }
        a.blksize = 4096;
    }

    void reply(std::uint64_t unique, int error, const void* data = nullptr, std::size_t size = 0) {
        fuse_out_header h{};
        h.len = static_cast<std::uint32_t>(sizeof h + size);
        h.error = error;
        h.unique = unique;
        std::vector<char> out(sizeof h + size);
        std::memcpy(out.data(), &h, sizeof h);
        if (size > 0)
            std::memcpy(out.data() + sizeof h, data, size);
        // A reply to a request the kernel gave up on (interrupted) fails with ENOENT: harmless.
        [[maybe_unused]] const auto n = ::write(m_fd, out.data(), out.size());
    }

    void serve() {
        std::vector<char> buf(k_max_write + 64 * 1024);
        while (!m_stop) {
            pollfd p{m_fd, POLLIN, 0};
            const int ready = ::poll(&p, 1, 100);
            if (ready <= 0 || (p.revents & POLLIN) == 0) {
                if (ready > 0 && (p.revents & (POLLERR | POLLHUP)) != 0)
                    return;
                continue;
            }
            const auto n = ::read(m_fd, buf.data(), buf.size());
            if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == ENOENT))
                continue;
            if (n < static_cast<ssize_t>(sizeof(fuse_in_header)))
                return; // ENODEV: unmounted
            fuse_in_header in{};
            std::memcpy(&in, buf.data(), sizeof in);
            const char* arg = buf.data() + sizeof in;
            handle(in, arg);
        }
    }

    void handle(const fuse_in_header& in, const char* arg) {
        switch (in.opcode) {
        case FUSE_INIT: {
            fuse_init_in init{};
            std::memcpy(&init, arg, std::min<std::size_t>(sizeof init, in.len - sizeof in));
            fuse_init_out out{};
            out.major = FUSE_KERNEL_VERSION;
            out.minor = FUSE_KERNEL_MINOR_VERSION;
            out.max_readahead = init.max_readahead;
            out.max_write = k_max_write;
            out.time_gran = 1;
            reply(in.unique, 0, &out, sizeof out);
            return;
        }
        case FUSE_LOOKUP: {
            if (in.nodeid != k_root || m_name != arg) {
                reply(in.unique, -ENOENT);
                return;
            }
            fuse_entry_out out{};
            out.nodeid = k_file;
            out.entry_valid = 3600;
            out.attr_valid = 3600;
            fill_attr(out.attr, k_file);
            reply(in.unique, 0, &out, sizeof out);
            return;
        }
        case FUSE_GETATTR: {
            fuse_attr_out out{};
            out.attr_valid = 3600;
            fill_attr(out.attr, in.nodeid == k_root ? k_root : k_file);
            reply(in.unique, 0, &out, sizeof out);
            return;
        }
        case FUSE_OPEN: {
            fuse_open_out out{};
            out.open_flags = FOPEN_DIRECT_IO; // every read(2) reaches this server
            reply(in.unique, 0, &out, sizeof out);
            return;
        }
        case FUSE_READ: {
            fuse_read_in r{};
            std::memcpy(&r, arg, sizeof r);
            if (r.offset + r.size > m_fail_from && r.offset < m_size) {
                if (r.offset >= m_fail_from) {
                    ++m_eio;
                    reply(in.unique, -EIO);
                    return;
                }
                r.size = static_cast<std::uint32_t>(m_fail_from - r.offset); // up to the bad spot
            }
            const std::uint64_t end = std::min<std::uint64_t>(m_size, r.offset + r.size);
            const std::size_t count = r.offset < end ? static_cast<std::size_t>(end - r.offset) : 0;
            const std::vector<char> data(count, 'L');
            m_served += count;
            reply(in.unique, 0, data.data(), count);
            return;
        }
        case FUSE_FORGET:
        case FUSE_BATCH_FORGET:
        case FUSE_INTERRUPT:
            return; // no reply
        case FUSE_RELEASE:
        case FUSE_FLUSH:
        case FUSE_RELEASEDIR:
            reply(in.unique, 0);
            return;
        default:
            reply(in.unique, -ENOSYS); // xattrs, access, statfs, opendir, ...: the kernel copes
            return;
        }
    }

    std::filesystem::path m_dir;
    std::string m_name;
    std::uint64_t m_size;
    std::uint64_t m_fail_from;
    int m_fd = -1;
    std::atomic<bool> m_stop{false};
    std::atomic<std::uint64_t> m_served{0};
    std::atomic<int> m_eio{0};
    std::thread m_thread;
};

} // namespace labctl::test
