// Volume contents streamed through libvirt: the base image (hashed while it is read), boot files
// and the seed ISO.

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include <labctl/core/encoding.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/fd.hpp>
#include <labctl/core/file.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/progress.hpp>
#include <labctl/core/signals.hpp>

#include "lv_objects.hpp"
#include "provision_parts.hpp"

namespace labctl::provision {

using namespace libvirt;

namespace {

std::string uploading(const std::string& name) {
    return fmt::format("uploading volume '{}'", name);
}

/// Aborts the stream unless it was finished: every way out of an upload leaves no stream open.
class Stream {
public:
    explicit Stream(virConnectPtr conn) : m_conn(conn), m_stream(virStreamNew(conn, 0)) {}
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
    ~Stream() {
        if (m_stream && m_open) {
            virStreamAbort(m_stream.get());
            virResetLastError();
        }
    }

    virStreamPtr get() const { return m_stream.get(); }
    explicit operator bool() const { return static_cast<bool>(m_stream); }
    void opened() { m_open = true; }

    void send_all(const char* data, std::size_t size, const std::string& name) {
        while (size > 0) {
            const int n = virStreamSend(m_stream.get(), data, size);
            if (n < 0)
                throw_operation_error(m_conn, uploading(name));
            data += n;
            size -= static_cast<std::size_t>(n);
        }
    }

    void finish(const std::string& name) {
        const int rc = virStreamFinish(m_stream.get());
        m_open = rc != 0;
        if (rc != 0)
            throw_operation_error(m_conn, uploading(name));
    }

private:
    virConnectPtr m_conn;
    StreamHandle m_stream;
    bool m_open = false;
};

/// Starts the upload; false on the test driver, which stores no contents.
bool begin(const Uploader& up, Stream& stream, virStorageVolPtr vol, const std::string& name,
           std::uint64_t bytes) {
    if (!stream)
        throw_operation_error(up.conn.get(), "creating a libvirt stream");
    if (virStorageVolUpload(vol, stream.get(), 0, bytes, 0) != 0) {
        const auto e = take_last_error();
        if (up.test_driver && e.code == VIR_ERR_NO_SUPPORT) {
            if (up.note)
                up.note("the test driver stores no volume contents: uploads are skipped");
            return false;
        }
        throw operation_error(up.conn.get(), uploading(name), e);
    }
    stream.opened();
    return true;
}

} // namespace

std::string upload_marker_path(const config::LabSpec& spec, const std::string& volume) {
    return (std::filesystem::path(spec.state_dir()) / "uploads" / (volume + ".unfinished"))
        .string();
}

void mark_upload_unfinished(const std::string& marker, const std::string& uri) {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(marker).parent_path(), ec);
    if (ec)
        throw Error(ExitCode::preflight,
                    fmt::format("cannot create {}: {}",
                                std::filesystem::path(marker).parent_path().string(), ec.message()),
                    "check the free space and the permissions of the lab's .labctl directory");
    write_file_atomic(marker, uri + "\n", 0644);
}

bool upload_unfinished(const std::string& marker) {
    std::error_code ec;
    return std::filesystem::exists(marker, ec);
}

void clear_upload_marker(const std::string& marker) {
    std::error_code ec;
    std::filesystem::remove(marker, ec);
    if (ec)
        log::warn("cannot remove {}: {}", marker, ec.message());
}

bool Uploader::file(virStorageVolPtr vol, const std::string& name, const std::string& path,
                    std::uint64_t bytes, const std::string& sha256) const {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.fd < 0)
        throw usage_error(fmt::format("cannot read {}: {}", path, std::strerror(errno)),
                          "check that the image exists and that you may read it");
    Stream stream(conn.get());
    const bool upload = begin(*this, stream, vol, name, bytes);
    Sha256 digest;
    std::vector<char> buf(1 << 20);
    std::uint64_t sent = 0;
    Progress progress(fmt::format("upload {}", name));
    if (upload)
        progress.event(fmt::format("{} to send", format_bytes(bytes)),
                       {{"total_bytes", std::to_string(bytes)}});
    for (;;) {
        signals::check(); // the stream aborts on the way out
        const ssize_t n = ::read(fd.fd, buf.data(), buf.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            throw usage_error(fmt::format("error while reading {} after {} bytes: {}", path, sent,
                                          std::strerror(errno)),
                              "the image or the disk under it is damaged");
        if (n == 0)
            break;
        const auto got = static_cast<std::size_t>(n);
        if (sent + got > bytes)
            break; // grew while it was read: reported below
        digest.update(std::string_view(buf.data(), got));
        if (upload)
            stream.send_all(buf.data(), got, name);
        sent += got;
        const auto rate = progress.rate(sent);
        progress.update(fmt::format("{} of {} ({}%), {}/s", format_bytes(sent), format_bytes(bytes),
                                    bytes == 0 ? 100 : sent * 100 / bytes, format_bytes(rate)),
                        {{"bytes", std::to_string(sent)},
                         {"total_bytes", std::to_string(bytes)},
                         {"rate_bps", std::to_string(rate)}});
    }
    if (sent != bytes)
        throw usage_error(
            fmt::format("{} changed while it was read: {} bytes instead of {}", path, sent, bytes),
            "do not modify the image while labctl provisions from it");
    if (!sha256.empty()) {
        const auto d = digest.finish();
        const auto actual =
            to_hex(std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
        if (actual != sha256)
            throw usage_error(
                fmt::format("image {} has sha256 {}, but image.sha256 is {}", path, actual, sha256),
                "the file is corrupt or not the image lab.yaml means");
        log::info("image {}: sha256 verified", path);
    }
    if (upload)
        stream.finish(name);
    return upload;
}

void Uploader::bytes(virStorageVolPtr vol, const std::string& name, const std::string& data) const {
    Stream stream(conn.get());
    if (!begin(*this, stream, vol, name, data.size()))
        return;
    stream.send_all(data.data(), data.size(), name);
    stream.finish(name);
}

} // namespace labctl::provision
