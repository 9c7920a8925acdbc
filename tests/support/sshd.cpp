#include "sshd.hpp"

#include <fmt/format.h>
#include <pwd.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>

#include "skip.hpp"

namespace labctl::test {

namespace {

void keygen(const std::filesystem::path& path, const std::string& type) {
    const auto r = run_process(
        {"ssh-keygen", "-q", "-t", type, "-N", "", "-C", "labctl-test", "-f", path.string()});
    if (!r.ok())
        throw std::runtime_error("ssh-keygen failed: " + r.err);
}

} // namespace

SshServer::SshServer() : SshServer(Options{}) {}

remote::ConnectOptions SshServer::login() const {
    remote::ConnectOptions o;
    o.endpoint = {host(), port(), user()};
    o.known_hosts = known_hosts().string();
    o.private_key = client_key().string();
    o.connect_timeout = std::chrono::seconds(5);
    o.io_timeout = std::chrono::seconds(10);
    return o;
}

SshServer::SshServer(Options options) : m_options(std::move(options)) {
    if (!std::filesystem::exists("/usr/sbin/sshd"))
        skip("/usr/sbin/sshd is not installed (openssh-server; scripts/install-deps installs it)");
    require_program("ssh-keygen");
    const passwd* pw = ::getpwuid(::getuid());
    m_user = pw ? pw->pw_name : "root";
    const auto d = m_dir.path();
    keygen(d / "ssh_host_ed25519_key", "ed25519");
    if (m_options.rsa_host_key)
        keygen(d / "ssh_host_rsa_key", "rsa");
    if (m_options.ecdsa_host_key)
        keygen(d / "ssh_host_ecdsa_key", "ecdsa");
    keygen(client_key(), "ed25519");
    std::filesystem::copy_file(client_key().string() + ".pub", d / "authorized_keys");
    m_port = free_port();

    std::string host_pub = read_file(host_key_pub());
    const auto sp = host_pub.find(' ');
    const auto sp2 = host_pub.find(' ', sp + 1);
    m_dir.write("known_hosts",
                fmt::format("[{}]:{} {}\n", host(), m_port, host_pub.substr(0, sp2)));

    // Privilege separation needs this directory when sshd runs as root.
    if (::getuid() == 0)
        std::filesystem::create_directories("/run/sshd");
    std::string cfg;
    if (m_options.include_dropins) {
        std::filesystem::create_directories(dropin_dir());
        cfg += fmt::format("Include {}/*.conf\n", dropin_dir().string());
    }
    cfg += m_options.extra_config + "\n";
    cfg += fmt::format(
        "Port {}\nListenAddress {}\nHostKey {}\n{}PidFile {}\nAuthorizedKeysFile {}\n"
        "StrictModes no\nUsePAM {}\nPasswordAuthentication {}\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\nLogLevel VERBOSE\n",
        m_port, host(), (d / "ssh_host_ed25519_key").string(),
        (m_options.rsa_host_key ? fmt::format("HostKey {}\n", (d / "ssh_host_rsa_key").string())
                                : std::string()) +
            (m_options.ecdsa_host_key
                 ? fmt::format("HostKey {}\n", (d / "ssh_host_ecdsa_key").string())
                 : std::string()),
        (d / "sshd.pid").string(), (d / "authorized_keys").string(),
        // As root, PAM like Debian's sshd (with UsePAM no a locked password blocks key logins
        // too); an unprivileged sshd cannot use PAM.
        ::getuid() == 0 ? "yes" : "no", m_options.password_auth ? "yes" : "no");
    m_dir.write("sshd_config", cfg);
    start();
}

void SshServer::start() {
    auto argv = m_options.command_prefix;
    for (const std::string a : {"/usr/sbin/sshd", "-D", "-e", "-f"})
        argv.push_back(a);
    argv.push_back(config().string());
    m_process = std::make_unique<BackgroundProcess>(argv, dir() / "sshd.log");
    if (!wait_for_port(m_port, std::chrono::seconds(10), host()))
        throw std::runtime_error("sshd did not start: " + m_process->log());
}

void SshServer::restart() {
    m_process.reset();
    start();
}

SshServer::~SshServer() {
    m_process.reset();
    // What `labctl harden` kept about this listener (harden/facts.hpp, k_facts_cache_dir).
    std::error_code ec;
    std::filesystem::remove(
        fmt::format("/var/lib/labctl/harden/{}_{}", m_options.listen_address, m_port), ec);
}

} // namespace labctl::test
