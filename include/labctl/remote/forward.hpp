#pragma once
// A local port forward through an SSH jump host, like `ssh -L 127.0.0.1:0:HOST:PORT jump`: a
// listener on 127.0.0.1 (an ephemeral port) whose every accepted connection is carried to
// HOST:PORT, as the jump host reaches it, by a direct-tcpip channel of one jump session. For the
// services of VMs on a remote hypervisor's NAT network, which only that host can reach.

#include <memory>
#include <string>

#include <labctl/remote/session.hpp>

namespace labctl::remote {

class Forward {
public:
    /// Connects to options.jump (required) as Tunnel does: its key pinned in
    /// options.known_hosts, never trusted on first use (HostKeyError; ConnectError and Error as
    /// Session::connect, each starting "jump host: "), within options.connect_timeout and
    /// io_timeout. Then listens on 127.0.0.1:0 and serves from a thread of its own.
    /// options.endpoint is the target: its host and port as the jump host sees them (its user is
    /// not used).
    ///
    /// One jump session serves every connection, one pump thread all their channels. A
    /// connection the target refuses (or the jump does not forward) is reset and the forward
    /// serves on; a channel the jump host does not open within options.io_timeout, or a lost
    /// jump session, ends the forward: its connections are reset, new ones are reset at once
    /// (the port stays bound, so nothing else can take it over), and failure() says why.
    static std::unique_ptr<Forward> open(const ConnectOptions& options);

    Forward(const Forward&) = delete;
    Forward& operator=(const Forward&) = delete;
    /// Stops serving within one poll interval (100 ms), resets the connections still open,
    /// closes their channels and the jump session within 2 s (a silent jump host is cut off),
    /// and closes the listener. No thread or session is left.
    ~Forward();

    /// The port on 127.0.0.1 that leads to target().
    int local_port() const;
    /// The host and port the jump host connects to.
    const Endpoint& target() const;
    /// The jump host, "user@host:port".
    const std::string& via() const;
    /// Why the forward stopped serving ("the jump host closed the connection"), or "".
    std::string failure() const;

private:
    struct Impl;
    explicit Forward(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

} // namespace labctl::remote
