#pragma once
// A jump host for tests (header-only): the test process moves into a network namespace of its own
// (unshare(CLONE_NEWNET), root only) where a real sshd is the jump host and a firewall rule
// rejects every connection to a protected address:port unless the connecting process runs as the
// jump host's login user, which only the jump sshd's session process does. So a connection that
// works proves the path went through the jump; the host's own network stack is never touched
// (the rules and the servers live in the namespace, which ends with the process).

#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <string>

#include <labctl/core/process.hpp>
#include <labctl/remote/session.hpp>

#include "fault_support.hpp"
#include "skip.hpp"
#include "sshd.hpp"
#include "support.hpp"
#include "test_user.hpp"

namespace labctl::test {

/// Moves this test process into a fresh network namespace with only `lo` (once per binary).
inline void enter_private_netns() {
    if (::geteuid() != 0)
        skip("a network namespace of the test's own needs root");
    for (const char* p : {"ip", "iptables", "pkill"})
        require_program(p);
    static const bool entered = [] {
        if (::unshare(CLONE_NEWNET) != 0)
            throw std::runtime_error(std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno));
        const auto r = run_process({"ip", "link", "set", "lo", "up"});
        if (!r.ok())
            throw std::runtime_error("ip link set lo up: " + r.err);
        return true;
    }();
    (void)entered;
}

/// The jump sshd, its login user and a known_hosts that pins it.
struct JumpHostFixture {
    TestUser jump_user;
    SshServer jump;
    TempDir dir;
    std::filesystem::path known_hosts;

    explicit JumpHostFixture(const std::string& jump_extra = "AllowTcpForwarding yes")
        : jump(SshServer::Options{jump_extra}) {
        // The jump sshd reads authorized_keys as its login user.
        std::filesystem::permissions(jump.dir(), std::filesystem::perms(0755));
        std::filesystem::permissions(jump.dir() / "authorized_keys", std::filesystem::perms(0644));
        known_hosts = dir.path() / "known_hosts";
        dir.write("known_hosts", read_file(jump.known_hosts()));
    }
    ~JumpHostFixture() { run_process({"iptables", "-w", "5", "-F", "OUTPUT"}); }
    JumpHostFixture(const JumpHostFixture&) = delete;
    JumpHostFixture& operator=(const JumpHostFixture&) = delete;

    /// From now on only the jump host's session process may connect to host:port (port 0: every
    /// TCP port of host).
    void only_through_jump(const std::string& host, int port) const {
        std::vector<std::string> rule{"iptables", "-w", "5",   "-A", "OUTPUT", "-o",
                                      "lo",       "-p", "tcp", "-d", host};
        if (port != 0) {
            rule.emplace_back("--dport");
            rule.push_back(std::to_string(port));
        }
        for (const char* a : {"-m", "owner", "!", "--uid-owner"})
            rule.emplace_back(a);
        rule.push_back(jump_user.name());
        for (const char* a : {"-j", "REJECT", "--reject-with", "tcp-reset"})
            rule.emplace_back(a);
        const auto r = run_process(rule);
        if (!r.ok())
            throw std::runtime_error("iptables: " + r.err);
    }

    remote::JumpHost jump_host() const {
        return {{jump.host(), jump.port(), jump_user.name()}, jump.client_key().string(), false};
    }
    /// "user@host:port" as labctl names the jump host.
    std::string jump_name() const {
        return jump_user.name() + "@" + jump.host() + ":" + std::to_string(jump.port());
    }

    /// Ends the jump host's session processes (they run as its login user): every connection
    /// through it is cut at once, the listener stays.
    void kill_jump_sessions(const char* signal = "-KILL") const {
        run_process({"pkill", signal, "-u", jump_user.name()});
    }
};

/// A jump host and a "guest" sshd reachable only through it.
struct JumpLab : JumpHostFixture {
    SshServer guest;

    explicit JumpLab(const std::string& jump_extra = "AllowTcpForwarding yes",
                     SshServer::Options guest_options = {})
        : JumpHostFixture(jump_extra), guest(std::move(guest_options)) {
        dir.write("known_hosts", read_file(guest.known_hosts()) + read_file(jump.known_hosts()));
        only_through_jump(guest.host(), guest.port());
    }

    /// True when every child of this process is one of the two sshd listeners: no ssh, no
    /// helper process, nothing labctl started is left.
    bool only_listeners_left() const {
        const auto children = children_of_self();
        for (const pid_t p : children) {
            const auto cmd = process_cmdline(p);
            if (cmd.find(guest.config().string()) == std::string::npos &&
                cmd.find(jump.config().string()) == std::string::npos)
                return false;
        }
        return children.size() == 2;
    }

    remote::ConnectOptions direct() const {
        remote::ConnectOptions o;
        o.endpoint = {guest.host(), guest.port(), guest.user()};
        o.known_hosts = known_hosts.string();
        o.private_key = guest.client_key().string();
        o.connect_timeout = std::chrono::seconds(3);
        o.io_timeout = std::chrono::seconds(5);
        return o;
    }
    remote::ConnectOptions through_jump() const {
        auto o = direct();
        o.jump = jump_host();
        return o;
    }
};

} // namespace labctl::test
