#pragma once
// Helpers for the fault tests (header-only): processes seen through /proc (children, descendants,
// command lines holding a marker), a TCP server that accepts and never speaks, and a TCP relay
// that can reset both of its connections after a given number of bytes.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sshd.hpp"

namespace labctl::test {

/// The whole of /proc/<pid>/<file>, empty when the process is gone (a read of a process that ends
/// meanwhile fails with ESRCH, which libstdc++'s filebuf throws even with no exceptions set).
inline std::string proc_file(pid_t pid, const char* file) {
    try {
        std::ifstream in("/proc/" + std::to_string(pid) + "/" + file, std::ios::binary);
        return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    } catch (const std::ios_base::failure&) {
        return {};
    }
}

inline std::string process_cmdline(pid_t pid) {
    std::string s = proc_file(pid, "cmdline");
    for (auto& c : s)
        if (c == '\0')
            c = ' ';
    return s;
}

inline std::string process_name(pid_t pid) {
    std::string s = proc_file(pid, "comm");
    return s.substr(0, s.find('\n'));
}

/// Parent pid and state letter from /proc/<pid>/stat (ppid -1 when gone).
inline std::pair<pid_t, char> process_parent(pid_t pid) {
    const std::string stat = proc_file(pid, "stat");
    const auto close = stat.rfind(')');
    if (close == std::string::npos)
        return {-1, '?'};
    std::istringstream rest(stat.substr(close + 1));
    char state = '?';
    long ppid = -1;
    rest >> state >> ppid;
    return {static_cast<pid_t>(ppid), state};
}

inline std::vector<pid_t> all_pids() {
    std::vector<pid_t> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
        const auto name = e.path().filename().string();
        if (!name.empty() && name.find_first_not_of("0123456789") == std::string::npos)
            out.push_back(static_cast<pid_t>(std::stol(name)));
    }
    return out;
}

/// Direct children of `parent`, zombies included (a zombie is a child nobody reaped).
inline std::vector<pid_t> children_of(pid_t parent) {
    std::vector<pid_t> out;
    for (const pid_t p : all_pids())
        if (process_parent(p).first == parent)
            out.push_back(p);
    return out;
}

inline std::vector<pid_t> children_of_self() {
    return children_of(::getpid());
}

inline std::vector<pid_t> descendants(pid_t root) {
    std::vector<pid_t> out;
    std::vector<pid_t> todo{root};
    while (!todo.empty() && out.size() < 10'000) {
        const pid_t p = todo.back();
        todo.pop_back();
        for (const pid_t c : children_of(p)) {
            out.push_back(c);
            todo.push_back(c);
        }
    }
    return out;
}

/// Live processes (not this one) whose command line contains `marker`.
inline std::vector<pid_t> processes_matching(const std::string& marker) {
    std::vector<pid_t> out;
    for (const pid_t p : all_pids()) {
        if (p == ::getpid())
            continue;
        if (process_parent(p).second == 'Z')
            continue;
        if (process_cmdline(p).find(marker) != std::string::npos)
            out.push_back(p);
    }
    return out;
}

inline void kill_matching(const std::string& marker) {
    for (const pid_t p : processes_matching(marker))
        ::kill(p, SIGKILL);
}

inline bool wait_until(const std::function<bool()>& done, std::chrono::milliseconds bound) {
    const auto until = std::chrono::steady_clock::now() + bound;
    while (!done()) {
        if (std::chrono::steady_clock::now() >= until)
            return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return true;
}

inline bool wait_gone(const std::string& marker, std::chrono::milliseconds bound) {
    return wait_until([&] { return processes_matching(marker).empty(); }, bound);
}

inline std::string unique_marker(const std::string& tag) {
    std::random_device rd;
    return "labctl-fault-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(rd());
}

/// The fixture's listening sshd: the child of this process started with its config.
inline pid_t pid_of_listener(const SshServer& sshd) {
    for (const pid_t p : children_of_self())
        if (process_cmdline(p).find(sshd.config().string()) != std::string::npos)
            return p;
    return -1;
}

namespace detail {
inline int listen_loopback(int& port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 8) != 0)
        throw std::runtime_error("cannot listen on 127.0.0.1");
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
    return fd;
}

inline void reset_close(int fd) {
    if (fd < 0)
        return;
    linger l{1, 0}; // close with RST
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(fd);
}
} // namespace detail

/// Accepts connections and never writes a byte (no SSH banner).
class SilentServer {
public:
    SilentServer() : m_fd(detail::listen_loopback(m_port)), m_thread([this] { loop(); }) {}
    ~SilentServer() {
        m_stop = true;
        m_thread.join();
        for (int c : m_clients)
            ::close(c);
        ::close(m_fd);
    }
    SilentServer(const SilentServer&) = delete;
    SilentServer& operator=(const SilentServer&) = delete;
    int port() const { return m_port; }
    int accepted() const { return m_accepted; }

private:
    void loop() {
        while (!m_stop) {
            pollfd p{m_fd, POLLIN, 0};
            if (::poll(&p, 1, 100) > 0) {
                const int c = ::accept4(m_fd, nullptr, nullptr, SOCK_CLOEXEC);
                if (c >= 0) {
                    m_clients.push_back(c);
                    ++m_accepted;
                }
            }
        }
    }
    int m_port = 0;
    int m_fd;
    std::vector<int> m_clients;
    std::atomic<int> m_accepted{0};
    std::atomic<bool> m_stop{false};
    std::thread m_thread;
};

/// Relays one connection at a time from 127.0.0.1:port() to upstream; after
/// reset_after_upstream_bytes(n) it resets both sides (RST) once n client bytes went through.
class TcpRelay {
public:
    TcpRelay(std::string upstream_host, int upstream_port)
        : m_host(std::move(upstream_host)), m_upstream_port(upstream_port),
          m_fd(detail::listen_loopback(m_port)), m_thread([this] { loop(); }) {}
    ~TcpRelay() {
        m_stop = true;
        m_thread.join();
        ::close(m_fd);
    }
    TcpRelay(const TcpRelay&) = delete;
    TcpRelay& operator=(const TcpRelay&) = delete;
    int port() const { return m_port; }
    std::uint64_t upstream_bytes() const { return m_up; }
    void reset_after_upstream_bytes(std::uint64_t n) { m_reset_at = n; }
    bool was_reset() const { return m_was_reset; }

private:
    void loop() {
        int client = -1, server = -1;
        char buf[65536];
        while (!m_stop) {
            pollfd fds[3] = {
                {client < 0 ? m_fd : -1, POLLIN, 0}, {client, POLLIN, 0}, {server, POLLIN, 0}};
            if (::poll(fds, 3, 100) <= 0)
                continue;
            if ((fds[0].revents & POLLIN) && client < 0) {
                client = ::accept4(m_fd, nullptr, nullptr, SOCK_CLOEXEC);
                sockaddr_in addr{};
                addr.sin_family = AF_INET;
                addr.sin_port = htons(static_cast<std::uint16_t>(m_upstream_port));
                ::inet_pton(AF_INET, m_host.c_str(), &addr.sin_addr);
                server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (::connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
                    ::close(client);
                    ::close(server);
                    client = server = -1;
                }
                continue;
            }
            bool closed = false;
            for (int i : {1, 2}) {
                if (fds[i].fd < 0 || fds[i].revents == 0)
                    continue;
                const int from = fds[i].fd;
                const int to = from == client ? server : client;
                const auto n = ::read(from, buf, sizeof buf);
                if (n <= 0) {
                    closed = true;
                    break;
                }
                for (ssize_t off = 0; off < n;) {
                    const auto w = ::write(to, buf + off, static_cast<std::size_t>(n - off));
                    if (w <= 0) {
                        closed = true;
                        break;
                    }
                    off += w;
                }
                if (from == client)
                    m_up += static_cast<std::uint64_t>(n);
            }
            if (!closed && m_reset_at != 0 && m_up >= m_reset_at) {
                detail::reset_close(client);
                detail::reset_close(server);
                client = server = -1;
                m_reset_at = 0;
                m_was_reset = true;
                continue;
            }
            if (closed) {
                ::close(client);
                ::close(server);
                client = server = -1;
            }
        }
        if (client >= 0)
            ::close(client);
        if (server >= 0)
            ::close(server);
    }
    std::string m_host;
    int m_upstream_port;
    int m_port = 0;
    int m_fd;
    std::atomic<std::uint64_t> m_up{0};
    std::atomic<std::uint64_t> m_reset_at{0};
    std::atomic<bool> m_was_reset{false};
    std::atomic<bool> m_stop{false};
    std::thread m_thread;
};

} // namespace labctl::test
