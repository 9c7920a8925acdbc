// remote::lease_session against a real OpenSSH server on 127.0.0.1 (tests/support/sshd.hpp): a
// login is kept between the stages of one command, lent to one caller at a time, and never lent
// again once its connection is gone or its lease ended by an exception.

#include <catch2/catch.hpp>
#include <stdexcept>
#include <thread>

#include <labctl/remote/session_pool.hpp>

#include "sshd.hpp"

using namespace labctl;
using namespace std::chrono_literals;

namespace {

remote::ConnectOptions options_for(const test::SshServer& sshd) {
    return sshd.login();
}

/// The logins sshd accepted so far (its log says each).
std::size_t accepted(const test::SshServer& sshd) {
    const auto log = sshd.log();
    std::size_t n = 0;
    for (auto at = log.find("Accepted publickey"); at != std::string::npos;
         at = log.find("Accepted publickey", at + 1))
        ++n;
    return n;
}

/// The shell's connection: the sshd process serving it ($PPID of the login shell).
std::string server_pid(remote::Session& s) {
    const auto r = s.exec("ps -o ppid= -p $PPID");
    REQUIRE(r.ok());
    return std::string(r.out.substr(0, r.out.find_last_not_of(" \n") + 1));
}

} // namespace

TEST_CASE("a login given back is lent again: the stages of one command share one connection",
          "[remote][pool]") {
    test::SshServer sshd;
    const auto before = remote::pool_counters();
    std::string first_server;
    {
        auto lease = remote::lease_session(options_for(sshd), 5s);
        CHECK(lease->exec("true").ok());
        first_server = server_pid(*lease);
    }
    {
        auto lease = remote::lease_session(options_for(sshd), 5s);
        CHECK(lease->exec("echo again").out == "again\n");
        CHECK(server_pid(*lease) == first_server);
    }
    const auto after = remote::pool_counters();
    CHECK(after.connected - before.connected == 1);
    CHECK(after.reused - before.reused == 1);
    CHECK(accepted(sshd) == 1);
    remote::close_sessions();
}

TEST_CASE("a session handed over by its maker is lent to the next caller", "[remote][pool]") {
    test::SshServer sshd;
    const auto options = options_for(sshd);
    remote::keep_session(options, remote::Session::connect(options));
    const auto before = remote::pool_counters();
    {
        auto lease = remote::lease_session(options, 5s);
        CHECK(lease->exec("true").ok());
    }
    CHECK(remote::pool_counters().connected == before.connected);
    CHECK(accepted(sshd) == 1);
    remote::close_sessions();
}

TEST_CASE("a lease ended by an exception does not go back: its state is in doubt",
          "[remote][pool]") {
    test::SshServer sshd;
    try {
        auto lease = remote::lease_session(options_for(sshd), 5s);
        CHECK(lease->exec("true").ok());
        throw std::runtime_error("a step failed");
    } catch (const std::runtime_error&) {
    }
    auto lease = remote::lease_session(options_for(sshd), 5s);
    CHECK(lease->exec("true").ok());
    CHECK(accepted(sshd) == 2);
    remote::close_sessions();
}

TEST_CASE("a discarded lease is closed, not kept", "[remote][pool]") {
    test::SshServer sshd;
    {
        auto lease = remote::lease_session(options_for(sshd), 5s);
        lease.discard();
    }
    auto lease = remote::lease_session(options_for(sshd), 5s);
    CHECK(lease->exec("true").ok());
    CHECK(accepted(sshd) == 2);
    remote::close_sessions();
}

TEST_CASE("a kept login the server closed is not lent again: a new connection is made",
          "[remote][pool]") {
    // OpenSSH 9.2's UnusedConnectionTimeout closes a connection without channels: a kept
    // session idling past it is gone.
    test::SshServer sshd({.extra_config = "UnusedConnectionTimeout 1\n"});
    const auto options = options_for(sshd);
    std::string first_server;
    {
        auto lease = remote::lease_session(options, 5s);
        first_server = server_pid(*lease);
    }
    std::this_thread::sleep_for(2500ms);
    const auto before = remote::pool_counters();
    auto lease = remote::lease_session(options, 5s);
    const auto r = lease->exec("echo fresh");
    CHECK(r.ok());
    CHECK(r.out == "fresh\n");
    CHECK(server_pid(*lease) != first_server);
    CHECK(remote::pool_counters().connected - before.connected == 1);
    CHECK(accepted(sshd) == 2);
    remote::close_sessions();
}

TEST_CASE("a kept login is lent to one caller at a time: a second caller connects anew",
          "[remote][pool]") {
    test::SshServer sshd;
    const auto options = options_for(sshd);
    {
        auto a = remote::lease_session(options, 5s);
        auto b = remote::lease_session(options, 5s);
        CHECK(server_pid(*a) != server_pid(*b));
    }
    // Both went back: two more leases at once need no new login.
    {
        auto a = remote::lease_session(options, 5s);
        auto b = remote::lease_session(options, 5s);
        CHECK(a->exec("true").ok());
        CHECK(b->exec("true").ok());
    }
    CHECK(accepted(sshd) == 2);
    remote::close_sessions();
}

TEST_CASE("another user or key is another login, never a kept one", "[remote][pool]") {
    test::SshServer sshd;
    auto options = options_for(sshd);
    { auto lease = remote::lease_session(options, 5s); }
    options.use_agent = true; // another way to log in: not the kept login's
    options.private_key = sshd.client_key().string();
    {
        auto lease = remote::lease_session(options, 5s);
        CHECK(lease->exec("true").ok());
    }
    CHECK(accepted(sshd) == 2);
    remote::close_sessions();
}
