#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <libssh2.h>
#include <libssh2_sftp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include <labctl/core/encoding.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/signals.hpp>
#include <labctl/remote/known_hosts.hpp>
#include <labctl/remote/session.hpp>

#include "session_impl.hpp"
#include "tunnel.hpp"

namespace labctl::remote {

using namespace detail;

namespace {

// libssh2_init/exit once per process: the one Library guard.
class Library {
public:
    static void ensure() { static Library lib; }
    Library(const Library&) = delete;
    Library& operator=(const Library&) = delete;

private:
    Library() {
        if (libssh2_init(0) != 0)
            throw Error(ExitCode::internal, "libssh2_init failed");
    }
    ~Library() { libssh2_exit(); }
};

Socket connect_tcp(const Endpoint& ep, std::chrono::milliseconds timeout) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    const auto port = std::to_string(ep.port);
    const int gai = ::getaddrinfo(ep.host.c_str(), port.c_str(), &hints, &res);
    if (gai != 0)
        throw ConnectError(ExitCode::ssh,
                           fmt::format("cannot resolve '{}': {}", ep.host, gai_strerror(gai)),
                           "check the host name in lab.yaml or --host");
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, ::freeaddrinfo);
    const auto deadline = Clock::now() + timeout;
    std::string last = "no address";
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
        Socket sock(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
        if (sock.fd() < 0)
            continue;
        const int flags = ::fcntl(sock.fd(), F_GETFL);
        ::fcntl(sock.fd(), F_SETFL, flags | O_NONBLOCK);
        int rc = ::connect(sock.fd(), ai->ai_addr, ai->ai_addrlen);
        if (rc != 0 && errno == EINPROGRESS) {
            pollfd p{sock.fd(), POLLOUT, 0};
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            rc = ::poll(&p, 1, static_cast<int>(std::max<long long>(left.count(), 0)));
            if (rc == 0)
                throw ConnectError(ExitCode::timeout,
                                   fmt::format("ssh: connecting to {}:{} timed out after {} ms",
                                               ep.host, ep.port, timeout.count()),
                                   "is the host up and the port forwarded/reachable?");
            int err = 0;
            socklen_t len = sizeof err;
            ::getsockopt(sock.fd(), SOL_SOCKET, SO_ERROR, &err, &len);
            rc = err == 0 ? 0 : -1;
            errno = err;
        }
        if (rc == 0) {
            ::fcntl(sock.fd(), F_SETFL, flags);
            // SSH's small packets (channel open, exec, EOF, window adjusts) go out at once, as
            // OpenSSH sends them: with Nagle each waited for the previous one's ACK, which a
            // slow (emulated) guest delays.
            const int one = 1;
            if (::setsockopt(sock.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
                log::debug("ssh: TCP_NODELAY on the connection to {}: {}", ep.host,
                           std::strerror(errno));
            return sock;
        }
        last = std::strerror(errno);
    }
    throw ConnectError(ExitCode::ssh,
                       fmt::format("ssh: cannot connect to {}:{}: {}", ep.host, ep.port, last),
                       "is sshd running there and the port right?");
}

std::string key_type_name(int type) {
    switch (type) {
    case LIBSSH2_HOSTKEY_TYPE_RSA:
        return "ssh-rsa";
    case LIBSSH2_HOSTKEY_TYPE_DSS:
        return "ssh-dss";
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
        return "ecdsa-sha2-nistp256";
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
        return "ecdsa-sha2-nistp384";
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
        return "ecdsa-sha2-nistp521";
    case LIBSSH2_HOSTKEY_TYPE_ED25519:
        return "ssh-ed25519";
    default:
        return "unknown";
    }
}

int knownhost_key_bit(int type) {
    switch (type) {
    case LIBSSH2_HOSTKEY_TYPE_RSA:
        return LIBSSH2_KNOWNHOST_KEY_SSHRSA;
    case LIBSSH2_HOSTKEY_TYPE_DSS:
        return LIBSSH2_KNOWNHOST_KEY_SSHDSS;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_256:
        return LIBSSH2_KNOWNHOST_KEY_ECDSA_256;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_384:
        return LIBSSH2_KNOWNHOST_KEY_ECDSA_384;
    case LIBSSH2_HOSTKEY_TYPE_ECDSA_521:
        return LIBSSH2_KNOWNHOST_KEY_ECDSA_521;
    case LIBSSH2_HOSTKEY_TYPE_ED25519:
        return LIBSSH2_KNOWNHOST_KEY_ED25519;
    default:
        return LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
    }
}

// Host key algorithms to ask for, from the key types pinned for this host: a server with several
// host keys must present the one we pinned, or the check would fail for the wrong reason.
std::string hostkey_preference(const std::vector<KnownHost>& pinned) {
    std::vector<std::string> prefs;
    auto add = [&](const std::string& alg) {
        if (std::find(prefs.begin(), prefs.end(), alg) == prefs.end())
            prefs.push_back(alg);
    };
    for (const auto& k : pinned) {
        if (k.key_type == "ssh-rsa") {
            add("rsa-sha2-512");
            add("rsa-sha2-256");
            add("ssh-rsa");
        } else {
            add(k.key_type);
        }
    }
    return fmt::format("{}", fmt::join(prefs, ","));
}

struct Connected {
    std::unique_ptr<Tunnel> tunnel; // first: outlives the session that runs over it
    Socket sock;
    SessionPtr session;
    ServerFacts facts;
};

Connected open_verified(const ConnectOptions& o) {
    Library::ensure();
    if (o.known_hosts.empty())
        throw Error(ExitCode::usage, "no known_hosts file given",
                    "labctl only connects to hosts whose key is pinned");
    const auto& ep = o.endpoint;
    Connected c;
    if (o.jump)
        c.tunnel = Tunnel::open(o, c.sock);
    else
        c.sock = connect_tcp(ep, o.connect_timeout);
    c.session.reset(libssh2_session_init());
    if (!c.session)
        throw Error(ExitCode::internal, "libssh2_session_init failed");
    LIBSSH2_SESSION* s = c.session.get();
    libssh2_session_set_blocking(s, 1);
    libssh2_session_set_timeout(s, static_cast<long>(o.io_timeout.count()));

    const auto pinned = find_known_hosts(o.known_hosts, ep.host, ep.port);
    if (const auto pref = hostkey_preference(pinned); !pref.empty())
        libssh2_session_method_pref(s, LIBSSH2_METHOD_HOSTKEY, pref.c_str());

    // Non-blocking, so the wait for the banner and the key exchange (a guest whose port is
    // forwarded but whose sshd is not up yet keeps it waiting) ends at once on Ctrl-C; a silent
    // server still ends at io_timeout.
    libssh2_session_set_blocking(s, 0);
    const auto handshake_until = Clock::now() + o.io_timeout;
    int handshake = 0;
    while ((handshake = libssh2_session_handshake(s, c.sock.fd())) == LIBSSH2_ERROR_EAGAIN) {
        signals::check();
        if (Clock::now() >= handshake_until) {
            handshake = LIBSSH2_ERROR_TIMEOUT;
            break;
        }
        const int dir = libssh2_session_block_directions(s);
        pollfd p{c.sock.fd(), 0, 0};
        p.events = static_cast<short>(((dir & LIBSSH2_SESSION_BLOCK_INBOUND) ? POLLIN : 0) |
                                      ((dir & LIBSSH2_SESSION_BLOCK_OUTBOUND) ? POLLOUT : 0));
        ::poll(&p, 1, 100);
    }
    libssh2_session_set_blocking(s, 1);
    if (const int rc = handshake; rc != 0) {
        const auto err = last_error(s);
        // By error code, never by libssh2's English text: a silent server (no banner, no key
        // exchange) is a timeout, whatever message libssh2 wraps around it.
        const int code = libssh2_session_last_errno(s);
        if (rc == LIBSSH2_ERROR_TIMEOUT || rc == LIBSSH2_ERROR_SOCKET_TIMEOUT ||
            code == LIBSSH2_ERROR_TIMEOUT || code == LIBSSH2_ERROR_SOCKET_TIMEOUT)
            throw ConnectError(ExitCode::timeout,
                               fmt::format("ssh: handshake with {} timed out after {} ms (phase "
                                           "ssh handshake: no banner or key exchange)",
                                           ep.to_string(), o.io_timeout.count()),
                               "is it an SSH server, and is it answering?");
        throw ConnectError(
            ExitCode::ssh, fmt::format("ssh: handshake with {} failed: {}", ep.to_string(), err),
            "the server may allow no algorithm libssh2 supports (see 'labctl doctor')");
    }

    std::size_t key_len = 0;
    int key_type = 0;
    const char* key = libssh2_session_hostkey(s, &key_len, &key_type);
    if (key == nullptr)
        throw Error(ExitCode::ssh, fmt::format("ssh: {} sent no host key", ep.to_string()));
    const std::string blob(key, key_len);
    c.facts.host_key_fingerprint = fingerprint(blob);
    c.facts.hostkey_type = key_type_name(key_type);
    auto method = [&](int m) {
        const char* v = libssh2_session_methods(s, m);
        return v ? std::string(v) : std::string();
    };
    c.facts.kex = method(LIBSSH2_METHOD_KEX);
    c.facts.cipher = method(LIBSSH2_METHOD_CRYPT_CS);
    c.facts.mac = method(LIBSSH2_METHOD_MAC_CS);

    KnownHostsPtr known(libssh2_knownhost_init(s));
    if (!known)
        throw Error(ExitCode::internal, "libssh2_knownhost_init failed");
    if (libssh2_knownhost_readfile(known.get(), o.known_hosts.c_str(),
                                   LIBSSH2_KNOWNHOST_FILE_OPENSSH) < 0)
        throw Error(ExitCode::ssh,
                    fmt::format("cannot read known_hosts '{}': {}", o.known_hosts, last_error(s)),
                    "labctl writes it when it provisions a VM; for --host, add the host's key");
    libssh2_knownhost* entry = nullptr;
    const int check = libssh2_knownhost_checkp(
        known.get(), ep.host.c_str(), ep.port, key, key_len,
        LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW | knownhost_key_bit(key_type),
        &entry);
    if (check == LIBSSH2_KNOWNHOST_CHECK_MISMATCH) {
        std::string expected = "unknown";
        if (entry != nullptr && entry->key != nullptr)
            if (auto decoded = base64_decode(entry->key))
                expected = fingerprint(*decoded);
        throw HostKeyError(
            HostKeyError::Reason::mismatch, known_hosts_pattern(ep.host, ep.port),
            fmt::format("host key mismatch for {}: known_hosts has {}, the server sent {} "
                        "{}",
                        known_hosts_pattern(ep.host, ep.port), expected, c.facts.hostkey_type,
                        c.facts.host_key_fingerprint),
            fmt::format("someone may be intercepting the connection, or the host was "
                        "re-created; check the key out of band before editing {}",
                        o.known_hosts));
    }
    if (check != LIBSSH2_KNOWNHOST_CHECK_MATCH)
        throw HostKeyError(
            HostKeyError::Reason::unpinned, known_hosts_pattern(ep.host, ep.port),
            fmt::format("host key of {} ({} {}) is not pinned in {}",
                        known_hosts_pattern(ep.host, ep.port), c.facts.hostkey_type,
                        c.facts.host_key_fingerprint, o.known_hosts),
            "labctl never trusts on first use: pin the key (labctl provision does this "
            "for its VMs; for --host, verify the fingerprint and add it)");
    log::debug("ssh: {} host key {} {} verified; kex {}, cipher {}, mac {}", ep.to_string(),
               c.facts.hostkey_type, c.facts.host_key_fingerprint, c.facts.kex, c.facts.cipher,
               c.facts.mac);

    if (char* list =
            libssh2_userauth_list(s, ep.user.c_str(), static_cast<unsigned>(ep.user.size()))) {
        std::string l(list);
        std::size_t start = 0;
        while (start < l.size()) {
            const auto comma = l.find(',', start);
            c.facts.auth_methods.push_back(l.substr(start, comma - start));
            if (comma == std::string::npos)
                break;
            start = comma + 1;
        }
    }
    return c;
}

bool try_agent(LIBSSH2_SESSION* s, const std::string& user) {
    AgentPtr agent(libssh2_agent_init(s));
    if (!agent || libssh2_agent_connect(agent.get()) != 0 ||
        libssh2_agent_list_identities(agent.get()) != 0)
        return false;
    libssh2_agent_publickey* prev = nullptr;
    libssh2_agent_publickey* id = nullptr;
    while (libssh2_agent_get_identity(agent.get(), &id, prev) == 0) {
        if (libssh2_agent_userauth(agent.get(), user.c_str(), id) == 0)
            return true;
        prev = id;
    }
    return false;
}

} // namespace

std::string Endpoint::to_string() const {
    return fmt::format("{}@{}:{}", user, host, port);
}

Endpoint parse_endpoint(const std::string& text, const Endpoint& defaults) {
    Endpoint ep = defaults;
    std::string rest = text;
    if (const auto at = rest.rfind('@'); at != std::string::npos) {
        ep.user = rest.substr(0, at);
        rest = rest.substr(at + 1);
    }
    std::string port;
    if (!rest.empty() && rest.front() == '[') {
        const auto close = rest.find(']');
        if (close == std::string::npos)
            throw usage_error(fmt::format("bad host '{}': missing ']'", text),
                              "write IPv6 hosts as [::1]:2222");
        ep.host = rest.substr(1, close - 1);
        if (close + 1 < rest.size() && rest[close + 1] == ':')
            port = rest.substr(close + 2);
    } else if (std::count(rest.begin(), rest.end(), ':') > 1) {
        ep.host = rest; // a bare IPv6 address: no port
    } else if (const auto colon = rest.find(':'); colon != std::string::npos) {
        ep.host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
    } else {
        ep.host = rest;
    }
    if (!port.empty()) {
        int p = 0;
        const bool digits = std::all_of(port.begin(), port.end(), ::isdigit) && port.size() <= 5;
        if (digits)
            p = std::stoi(port);
        if (!digits || p < 1 || p > 65535)
            throw usage_error(fmt::format("bad port in '{}'", text), "use a port from 1 to 65535");
        ep.port = p;
    }
    if (ep.host.empty() || ep.user.empty())
        throw usage_error(fmt::format("bad host '{}'", text), "write [USER@]HOST[:PORT]");
    return ep;
}

Session::Impl::Impl() = default;
Session::Impl::~Impl() = default;

Session::Session(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;
Session::~Session() = default;

const Endpoint& Session::endpoint() const {
    return m_impl->endpoint;
}
const ServerFacts& Session::facts() const {
    return m_impl->facts;
}
bool Session::is_root() const {
    return m_impl->endpoint.user == "root";
}

std::string Session::gone() const {
    const auto& impl = *m_impl;
    if (impl.tunnel)
        if (auto f = impl.tunnel->failure(); !f.empty())
            return "through the jump host: " + f;
    pollfd p{impl.sock.fd(), POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0)
        return {};
    if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(impl.sock.fd(), SOL_SOCKET, SO_ERROR, &err, &len);
        return err != 0 ? std::strerror(err) : "the peer closed the connection";
    }
    char c = 0;
    const auto n = ::recv(impl.sock.fd(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return "the peer closed the connection";
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? std::string()
                                                                         : std::strerror(errno);
    // Nothing is owed to an idle client but a goodbye or a keep-alive that wants an answer:
    // either way the connection is in doubt, and a new one costs less than a failed step.
    return "the server sent data while the session was idle";
}

void Session::set_timeouts(std::chrono::milliseconds io, std::chrono::milliseconds exec) {
    m_impl->io_timeout = io;
    m_impl->exec_timeout = exec;
    libssh2_session_set_timeout(m_impl->s(), static_cast<long>(io.count()));
}

Session Session::connect(const ConnectOptions& options) {
    auto c = open_verified(options);
    LIBSSH2_SESSION* s = c.session.get();
    const auto& ep = options.endpoint;
    std::vector<std::string> tried;
    bool ok = libssh2_userauth_authenticated(s) != 0;
    if (!ok && options.use_agent) {
        tried.emplace_back("ssh-agent");
        ok = try_agent(s, ep.user);
    }
    if (!ok && !options.private_key.empty()) {
        tried.push_back("key " + options.private_key);
        std::error_code ec;
        const std::string pub = options.private_key + ".pub";
        const bool has_pub = std::filesystem::exists(pub, ec);
        const int rc = libssh2_userauth_publickey_fromfile_ex(
            s, ep.user.c_str(), static_cast<unsigned>(ep.user.size()),
            has_pub ? pub.c_str() : nullptr, options.private_key.c_str(), "");
        ok = rc == 0;
        // The key file itself is unusable: say so, not "refused" (the server never saw a key).
        if (rc == LIBSSH2_ERROR_FILE && !ok)
            throw Error(ExitCode::ssh,
                        fmt::format("ssh: the private key {} could not be read or parsed ({})",
                                    options.private_key, last_error(s)),
                        fmt::format("it must be an unencrypted OpenSSH private key; 'ssh-keygen -y "
                                    "-f {}' checks it",
                                    options.private_key));
        if (!ok)
            log::debug("ssh: key authentication failed: {}", last_error(s));
    }
    if (!ok)
        throw Error(
            ExitCode::ssh,
            fmt::format("ssh: authentication as {} refused (tried: {}; server offers: {})",
                        ep.to_string(),
                        tried.empty() ? "nothing" : fmt::format("{}", fmt::join(tried, ", ")),
                        fmt::format("{}", fmt::join(c.facts.auth_methods, ","))),
            "is the public key in the user's authorized_keys? (labctl provision puts it "
            "there through cloud-init)");
    libssh2_keepalive_config(s, 1, static_cast<unsigned>(std::max(options.keepalive_seconds, 1)));
    auto impl = std::make_unique<Impl>();
    impl->tunnel = std::move(c.tunnel);
    impl->sock = std::move(c.sock);
    impl->session = std::move(c.session);
    impl->endpoint = ep;
    impl->facts = std::move(c.facts);
    impl->io_timeout = options.io_timeout;
    impl->exec_timeout = options.exec_timeout;
    return Session(std::move(impl));
}

ServerFacts Session::probe(const ConnectOptions& options) {
    return open_verified(options).facts;
}

bool Session::password_accepted(const ConnectOptions& options, const std::string& password) {
    auto c = open_verified(options);
    const auto& user = options.endpoint.user;
    return libssh2_userauth_password_ex(c.session.get(), user.c_str(),
                                        static_cast<unsigned>(user.size()), password.c_str(),
                                        static_cast<unsigned>(password.size()), nullptr) == 0;
}

Session wait_for_session(const ConnectOptions& options, std::chrono::milliseconds wait) {
    const auto until = Clock::now() + wait;
    std::string last;
    int attempts = 0;
    while (true) {
        ++attempts;
        try {
            return Session::connect(options);
        } catch (const ConnectError& e) {
            last = e.what();
            log::debug("ssh: {} not ready yet ({})", options.endpoint.to_string(), last);
        }
        signals::check(); // Ctrl-C ends the wait between attempts, not at its end
        if (Clock::now() >= until)
            throw Error(ExitCode::timeout,
                        fmt::format("timed out after {}s waiting for ssh on {}:{} ({} attempts; "
                                    "last: {})",
                                    wait.count() / 1000, options.endpoint.host,
                                    options.endpoint.port, attempts, last),
                        "is the host up and sshd listening? ('labctl doctor', the VM console)");
        std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(
            std::chrono::milliseconds(500 * std::min(attempts, 4)),
            std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()) +
                std::chrono::milliseconds(1)));
        signals::check();
    }
}

std::vector<std::string> client_algorithms(const std::string& kind) {
    Library::ensure();
    int method = 0;
    if (kind == "kex")
        method = LIBSSH2_METHOD_KEX;
    else if (kind == "hostkey")
        method = LIBSSH2_METHOD_HOSTKEY;
    else if (kind == "cipher")
        method = LIBSSH2_METHOD_CRYPT_CS;
    else if (kind == "mac")
        method = LIBSSH2_METHOD_MAC_CS;
    else
        throw Error(ExitCode::internal, "client_algorithms: unknown kind " + kind);
    // Never connected, so it is only freed (disconnect would write to a socket it does not have).
    std::unique_ptr<LIBSSH2_SESSION, int (*)(LIBSSH2_SESSION*)> s(libssh2_session_init(),
                                                                  libssh2_session_free);
    const char** algs = nullptr;
    const int n = libssh2_session_supported_algs(s.get(), method, &algs);
    std::vector<std::string> out;
    for (int i = 0; i < n; ++i)
        out.emplace_back(algs[i]);
    if (n > 0)
        libssh2_free(s.get(), static_cast<void*>(algs));
    return out;
}

} // namespace labctl::remote
