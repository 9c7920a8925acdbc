#pragma once
// A real OpenSSH server for tests (Debian 12's /usr/sbin/sshd, OpenSSH 9.2p1; nothing faked): its
// own host keys, config, authorized_keys and a client key pair in a temporary directory, listening
// on a free 127.0.0.1 port, as the current user. It never touches the machine's /etc/ssh. Skips the
// test (exit 77) when sshd is not installed.

#include <memory>
#include <string>
#include <vector>

#include <labctl/remote/session.hpp>

#include "background.hpp"
#include "support.hpp"

namespace labctl::test {

class SshServer {
public:
    struct Options {
        std::string extra_config; ///< appended to sshd_config (wins: sshd takes the first value)
        bool rsa_host_key = false;
        bool ecdsa_host_key = false; ///< also an ecdsa-sha2-nistp256 host key
        /// Start the config with `Include <dir>/sshd_config.d/*.conf` (as Debian does), so a
        /// drop-in there overrides the fixture's own settings.
        bool include_dropins = false;
        bool password_auth = false; ///< PasswordAuthentication yes (the "before" of hardening)
        std::string listen_address = "127.0.0.1"; ///< any 127.0.0.0/8 address
        /// Run sshd through this command (e.g. `ip netns exec NS ...` for a test's namespace).
        std::vector<std::string> command_prefix;
    };
    SshServer();
    explicit SshServer(Options options);
    ~SshServer();

    int port() const { return m_port; }
    std::string host() const { return m_options.listen_address; }
    std::string user() const { return m_user; }
    std::filesystem::path dir() const { return m_dir.path(); }
    std::filesystem::path client_key() const { return m_dir.path() / "client_ed25519"; }
    /// A known_hosts file pinning this server's ed25519 key for [127.0.0.1]:port.
    std::filesystem::path known_hosts() const { return m_dir.path() / "known_hosts"; }
    std::filesystem::path host_key_pub() const { return m_dir.path() / "ssh_host_ed25519_key.pub"; }
    std::filesystem::path config() const { return m_dir.path() / "sshd_config"; }
    std::filesystem::path dropin_dir() const { return m_dir.path() / "sshd_config.d"; }
    std::string log() const { return m_process ? m_process->log() : std::string(); }
    /// How labctl logs in here: this server's pinned key, the client key, 5 s to connect and
    /// 10 s per blocking call.
    remote::ConnectOptions login() const;
    void restart();

private:
    void start();
    Options m_options;
    TempDir m_dir;
    std::string m_user;
    int m_port = 0;
    std::unique_ptr<BackgroundProcess> m_process;
};

} // namespace labctl::test
