#pragma once
// An SSH session over libssh2 that only ever talks to a host whose key is pinned in a known_hosts
// file (no trust on first use, no way to switch checking off), authenticates with a key (file or
// ssh-agent), runs commands with streamed output, exit status and a timeout, and uploads files
// atomically over SFTP.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <labctl/core/error.hpp>

namespace labctl::remote {

namespace detail {
struct SessionAccess;
}

/// The TCP connection or SSH handshake could not be made (refused, unreachable, timed out): the
/// host may still be booting, so callers that wait for SSH retry on this and nothing else.
class ConnectError : public Error {
public:
    using Error::Error;
};

/// The host's key is not pinned in known_hosts, or differs from the pinned one (exit 5): final,
/// never retried. Callers that know whose key it is (a jump host) can say how to pin it.
class HostKeyError : public Error {
public:
    enum class Reason { unpinned, mismatch };
    HostKeyError(Reason reason, std::string pattern, std::string message, std::string hint)
        : Error(ExitCode::ssh, std::move(message), std::move(hint)), m_reason(reason),
          m_pattern(std::move(pattern)) {}
    Reason reason() const noexcept { return m_reason; }
    /// The known_hosts pattern of the host: "host" or "[host]:port".
    const std::string& pattern() const noexcept { return m_pattern; }

private:
    Reason m_reason;
    std::string m_pattern;
};

struct Endpoint {
    std::string host; ///< name or address; loopback in tests (port forwards)
    int port = 22;
    std::string user;

    /// "user@host:port"
    std::string to_string() const;
};

/// Parses "[user@]host[:port]" ("[::1]:2222" for IPv6); missing parts come from `defaults`.
Endpoint parse_endpoint(const std::string& text, const Endpoint& defaults);

/// The deadline of an exec whose caller sets none (ConnectOptions::exec_timeout overrides it).
inline constexpr std::chrono::milliseconds k_default_exec_timeout{30 * 60 * 1000};

/// An SSH host that labctl connects through to reach `ConnectOptions::endpoint` (a guest on a
/// remote hypervisor's NAT network): its key is pinned in the same known_hosts as the target's.
struct JumpHost {
    Endpoint endpoint;
    std::string private_key; ///< key file; empty = ssh-agent only
    bool use_agent = true;   ///< try ssh-agent identities before the key file
};

struct ConnectOptions {
    Endpoint endpoint;
    /// When set, endpoint is reached through this host (a direct-tcpip channel), never directly.
    std::optional<JumpHost> jump;
    std::string known_hosts; ///< required: the pinned host keys
    std::string private_key; ///< key file; empty = use ssh-agent only
    bool use_agent = false;  ///< try ssh-agent identities ($SSH_AUTH_SOCK) before the key file
    std::chrono::milliseconds connect_timeout{10'000};
    std::chrono::milliseconds io_timeout{30'000}; ///< per blocking libssh2 call
    /// The deadline of every exec whose ExecOptions::timeout is 0: generous, but never none.
    std::chrono::milliseconds exec_timeout{k_default_exec_timeout};
    int keepalive_seconds = 15;
};

struct ExecOptions {
    /// On expiry the remote command's process group is ended (TERM, then KILL after a grace
    /// period) and the result says timed_out. 0 = the session's default deadline
    /// (ConnectOptions::exec_timeout, 30 min unless overridden); reaching that one throws
    /// Error(timeout) naming the phase, since such a caller expects no timeout.
    std::chrono::milliseconds timeout{0};
    /// Names the step in errors ("docker load", "compose up"); default: the command's start.
    std::string phase;
    std::optional<std::string> stdin_data;
    /// Streams stdin instead: called whenever the channel can take more; fills `buf` with up to
    /// `size` bytes and returns how many, 0 at the end. May block (e.g. reading a pipe).
    std::function<std::size_t(char* buf, std::size_t size)> stdin_source;
    bool sudo = false; ///< run through `sudo -n` unless the user is root
    std::function<void(const std::string& line)> on_stdout_line;
    std::function<void(const std::string& line)> on_stderr_line;
    /// Asked at every poll of the running command (at least every 100 ms): once it returns
    /// true, the remote process group is ended as on a timeout and exec throws
    /// Error(interrupted) naming the phase. For a run that gave this command up from another
    /// thread (provision under --parallel after another VM failed). Must not throw.
    std::function<bool()> cancelled;
};

struct ExecResult {
    int exit_status = -1;
    std::string exit_signal; ///< e.g. "KILL" when the remote process died of a signal
    std::string out;
    std::string err;
    bool timed_out = false;

    bool ok() const { return exit_status == 0 && !timed_out && exit_signal.empty(); }
};

/// What the server says before authentication: the authentication methods it offers, and the
/// negotiated algorithms. Probing never authenticates.
struct ServerFacts {
    std::vector<std::string> auth_methods; ///< e.g. {"publickey"}
    std::string kex, hostkey_type, cipher, mac;
    std::string host_key_fingerprint; ///< "SHA256:..." as ssh-keygen prints it
};

class Session {
public:
    /// Connects, verifies the host key against options.known_hosts and authenticates.
    /// Errors: Error(timeout) when the TCP connection or handshake times out; Error(ssh) on a host
    /// key mismatch (both fingerprints named), an unknown host, or refused authentication.
    static Session connect(const ConnectOptions& options);

    /// Connects and verifies the host key, then reports what the server offers without logging in.
    static ServerFacts probe(const ConnectOptions& options);

    /// True when the server accepts `password` for the endpoint's user (hardening checks that
    /// this is false). The host key is verified first.
    static bool password_accepted(const ConnectOptions& options, const std::string& password);

    Session(Session&&) noexcept;
    Session& operator=(Session&&) noexcept;
    ~Session();

    /// Runs `command` through the remote user's shell, as a process group of its own on the
    /// target (setsid), so a timeout or Ctrl-C ends the command with all its children.
    /// Errors: Error(ssh) when the connection is lost (reset, closed) mid-command; Error(timeout)
    /// at the default deadline or when libssh2 times out; Interrupted when SIGINT/SIGTERM
    /// arrives while the command runs (the remote group is ended first); Error(interrupted) when
    /// options.cancelled turns true (the remote group is ended first, too).
    ExecResult exec(const std::string& command, const ExecOptions& options = {});

    /// Writes `content` to `remote_path` with `mode`: SFTP upload to a temporary name beside it,
    /// then an atomic rename. With sudo (for root-owned paths), the upload goes to a private
    /// temporary file first and `sudo install` moves it into place.
    void upload(const std::string& remote_path, const std::string& content, int mode,
                bool sudo = false);

    const Endpoint& endpoint() const;
    const ServerFacts& facts() const;
    bool is_root() const;

    /// Empty while the connection looks usable; else why it is gone (the peer closed or reset
    /// it). Never blocks: a kept session is asked before it is handed out again.
    std::string gone() const;
    /// The per-call and default exec deadlines of a session kept for another caller.
    void set_timeouts(std::chrono::milliseconds io, std::chrono::milliseconds exec);

private:
    friend struct detail::SessionAccess; // the jump tunnel and port forwards pump its channels
    struct Impl;
    explicit Session(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

/// Connects like Session::connect, retrying while the host is not reachable yet (ConnectError)
/// for up to `wait`; then throws Error(timeout) naming the ssh phase. Host key and authentication
/// failures are final at once.
Session wait_for_session(const ConnectOptions& options, std::chrono::milliseconds wait);

/// Algorithms labctl's own SSH client (libssh2) supports, per kind: "kex", "hostkey", "cipher",
/// "mac". Hardening intersects its policy with these so labctl never locks itself out.
std::vector<std::string> client_algorithms(const std::string& kind);

} // namespace labctl::remote
