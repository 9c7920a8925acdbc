// ssh.hardened against a real OpenSSH server on loopback (its own config, keys and port): the
// effective `sshd -T` values over the pinned-key session, and password authentication refused.

#include <catch2/catch.hpp>

#include <labctl/core/process.hpp>
#include <labctl/verify/verify.hpp>

#include "skip.hpp"
#include "sshd.hpp"

using namespace labctl;
using labctl::test::SshServer;

namespace {
verify::Options ssh_options(const SshServer& server) {
    verify::Options o;
    o.checks = {"ssh.hardened"};
    o.deadline = std::chrono::seconds(20);
    remote::ConnectOptions c;
    c.endpoint = {server.host(), server.port(), server.user()};
    c.known_hosts = server.known_hosts().string();
    c.private_key = server.client_key().string();
    o.ssh.connect = c;
    o.ssh.sshd = find_program("sshd").value_or("/usr/sbin/sshd");
    o.ssh.sshd_config = server.config().string();
    o.ssh.sudo = false;
    return o;
}
} // namespace

TEST_CASE("verify ssh.hardened: passes when sshd -T shows the expected values and only publickey "
          "is offered",
          "[verify][ssh]") {
    SshServer server;
    auto o = ssh_options(server);
    o.ssh.expected = {{"passwordauthentication", "no"}, {"pubkeyauthentication", "yes"}};
    const auto r = verify::run_checks(o).at(0);
    INFO(r.message << "\n" << server.log());
    CHECK(r.status == verify::Status::pass);
    CHECK(r.message.find("2 sshd settings as expected") != std::string::npos);
    REQUIRE(r.evidence.size() == 2);
    CHECK(r.evidence[1].url.find("-T -f") != std::string::npos);
}

TEST_CASE("verify ssh.hardened: a wrong effective value fails naming the keyword, got and expected",
          "[verify][ssh]") {
    SshServer server;
    auto o = ssh_options(server);
    o.ssh.expected = {{"passwordauthentication", "no"}, {"maxauthtries", "2"}};
    const auto r = verify::run_checks(o).at(0);
    INFO(r.message);
    CHECK(r.status == verify::Status::fail);
    CHECK(r.message.find("maxauthtries is '") != std::string::npos);
    CHECK(r.message.find("expected '2'") != std::string::npos);
    CHECK(r.message.find("passwordauthentication") == std::string::npos);
}

TEST_CASE("verify ssh.hardened: a server offering password authentication fails", "[verify][ssh]") {
    SshServer::Options so;
    so.password_auth = true;
    SshServer server(so);
    auto o = ssh_options(server);
    o.ssh.expected = {{"pubkeyauthentication", "yes"}};
    const auto r = verify::run_checks(o).at(0);
    INFO(r.message);
    CHECK(r.status == verify::Status::fail);
    CHECK(r.message.find("offers password authentication") != std::string::npos);
}

TEST_CASE("verify ssh.hardened: without SSH settings the check is skipped, not failed",
          "[verify][ssh]") {
    verify::Options o;
    o.checks = {"ssh.hardened"};
    const auto r = verify::run_checks(o).at(0);
    CHECK(r.status == verify::Status::skip);
}

TEST_CASE("verify ssh.hardened with the ssh-audit policy: stock algorithms fail, hardened pass",
          "[verify][ssh]") {
    test::require_program("ssh-audit");
    {
        SshServer stock; // OpenSSH's default algorithm lists, as on a fresh Debian host
        auto o = ssh_options(stock);
        o.ssh.audit = true;
        const auto r = verify::run_checks(o).at(0);
        INFO(r.message);
        CHECK(r.status == verify::Status::fail);
        CHECK(r.message.find("ssh-audit reports") != std::string::npos);
    }
    SshServer::Options so;
    // The lists `labctl harden` writes for the modern profile on this OpenSSH.
    so.extra_config = "KexAlgorithms sntrup761x25519-sha512@openssh.com,curve25519-sha256,"
                      "curve25519-sha256@libssh.org\n"
                      "Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,"
                      "aes128-gcm@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr\n"
                      "MACs hmac-sha2-512-etm@openssh.com,hmac-sha2-256-etm@openssh.com,"
                      "umac-128-etm@openssh.com,hmac-sha2-512,hmac-sha2-256\n"
                      "HostKeyAlgorithms ssh-ed25519,rsa-sha2-512,rsa-sha2-256\n";
    SshServer hardened(so);
    auto o = ssh_options(hardened);
    o.ssh.audit = true;
    const auto r = verify::run_checks(o).at(0);
    INFO(r.message);
    CHECK(r.status == verify::Status::pass);
    CHECK(r.message.find("ssh-audit: no failures") != std::string::npos);
}
