// Session::upload: an SFTP upload to a temporary name and an atomic rename into place.

#include <fmt/format.h>
#include <libssh2.h>
#include <libssh2_sftp.h>

#include <filesystem>
#include <random>

#include <labctl/core/error.hpp>
#include <labctl/core/text.hpp>
#include <labctl/remote/session.hpp>

#include "session_impl.hpp"

namespace labctl::remote {

using namespace detail;

void Session::upload(const std::string& remote_path, const std::string& content, int mode,
                     bool sudo) {
    LIBSSH2_SESSION* s = m_impl->s();
    libssh2_session_set_blocking(s, 1);
    const bool via_staging = sudo && !is_root();
    std::random_device rd;
    const std::string suffix = fmt::format(".labctl-tmp-{:08x}", rd());
    const std::filesystem::path target(remote_path);
    // Staging for sudo lives in the user's home (private), not /tmp (shared, symlink games).
    const std::string tmp =
        via_staging ? ".labctl-upload" + suffix
                    : (target.parent_path() / (target.filename().string() + suffix)).string();
    {
        SftpPtr sftp(libssh2_sftp_init(s));
        if (!sftp)
            throw Error(ExitCode::ssh, fmt::format("sftp: cannot start on {}: {}",
                                                   m_impl->endpoint.to_string(), last_error(s)));
        SftpHandlePtr file(
            libssh2_sftp_open_ex(sftp.get(), tmp.c_str(), static_cast<unsigned>(tmp.size()),
                                 LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_EXCL,
                                 via_staging ? 0600 : mode, LIBSSH2_SFTP_OPENFILE));
        if (!file)
            throw Error(ExitCode::ssh,
                        fmt::format("sftp: cannot create {} on {} (sftp error {})", tmp,
                                    m_impl->endpoint.host, libssh2_sftp_last_error(sftp.get())),
                        sudo ? "" : "does the directory exist and belong to the SSH user?");
        std::string_view rest = content;
        while (!rest.empty()) {
            const auto n = libssh2_sftp_write(file.get(), rest.data(), rest.size());
            if (n < 0) {
                const int rc = static_cast<int>(n);
                const auto done = content.size() - rest.size();
                const bool timeout =
                    rc == LIBSSH2_ERROR_TIMEOUT || rc == LIBSSH2_ERROR_SOCKET_TIMEOUT;
                const auto why =
                    rc == LIBSSH2_ERROR_SFTP_PROTOCOL
                        ? fmt::format("sftp status {}", libssh2_sftp_last_error(sftp.get()))
                        : fmt::format("libssh2 error {}: {}", rc, last_error(s));
                throw Error(timeout ? ExitCode::timeout : ExitCode::ssh,
                            fmt::format("sftp: upload of {} to {} {} after {} of {} bytes ({}); "
                                        "{} was not changed",
                                        remote_path, m_impl->endpoint.to_string(),
                                        timeout ? "timed out" : "failed", done, content.size(), why,
                                        remote_path),
                            timeout ? "is the host overloaded or the network stalled?"
                                    : "is the host up and its disk not full?");
            }
            rest.remove_prefix(static_cast<std::size_t>(n));
        }
    }
    // SFTP v3 (OpenSSH) cannot rename over an existing file, so the atomic rename(2) is done by mv.
    const std::string mode_str = fmt::format("{:04o}", mode);
    const std::string cmd =
        via_staging
            ? fmt::format("sudo -n install -m {} {} {} && sudo -n mv -f -- {} {}; rc=$?; rm -f -- "
                          "{}; exit $rc",
                          mode_str, shell_quote(tmp), shell_quote(remote_path + suffix),
                          shell_quote(remote_path + suffix), shell_quote(remote_path),
                          shell_quote(tmp))
            // A cut-off upload leaves its temporary file; the next good one removes it.
            : fmt::format("chmod {} {} && mv -f -- {} {} && {{ rm -f -- {}.labctl-tmp-* "
                          "2>/dev/null; true; }}",
                          mode_str, shell_quote(tmp), shell_quote(tmp), shell_quote(remote_path),
                          shell_quote(remote_path));
    const auto r = exec(cmd, {.timeout = m_impl->io_timeout});
    if (!r.ok()) {
        exec("rm -f -- " + shell_quote(tmp), {.timeout = m_impl->io_timeout});
        throw Error(ExitCode::ssh,
                    fmt::format("cannot move the upload into place at {}: {}", remote_path, r.err),
                    via_staging ? "does the user have passwordless sudo?" : "");
    }
}

} // namespace labctl::remote
