// remote::Forward, a local port forward through the jump host (issue #15 §2, what `labctl verify`
// uses to reach the services of a VM behind a remote hypervisor), against a real OpenSSH jump
// host and a real HTTP server (Python's http.server) that only the jump can reach
// (tests/support/jump_lab.hpp: a network namespace of the test's own, where a firewall rule lets
// only the jump's login user connect to 127.0.0.2). A request that is answered proves the path
// went through the jump.

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <labctl/remote/forward.hpp>

#include "background.hpp"
#include "jump_lab.hpp"
#include "skip.hpp"
#include "support.hpp"

using namespace labctl;
using namespace std::chrono_literals;
using labctl::test::BackgroundProcess;
using labctl::test::enter_private_netns;
using labctl::test::JumpHostFixture;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

using labctl::test::contains;

// The HTTP server standing in for a VM's service: /hello, /big/<n> (n bytes), /slow (64 KiB every
// 50 ms for a minute, no length), POST echoes its body.
constexpr const char* k_server_py = R"PY(
import http.server, sys, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def reply(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path.startswith("/big/"):
            n = int(self.path[5:])
            return self.reply((b"0123456789abcdef" * (n // 16 + 1))[:n])
        if self.path == "/slow":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            for _ in range(1200):
                self.wfile.write(b"s" * 65536)
                self.wfile.flush()
                time.sleep(0.05)
            return
        self.reply(b"hello " + self.path.encode())
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.reply(body)
http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
)PY";

/// The HTTP server on 127.0.0.2:`port`, reachable only through the jump.
struct HttpTarget {
    const JumpHostFixture& lab;
    int port;
    std::unique_ptr<BackgroundProcess> server;

    HttpTarget(const JumpHostFixture& l, int p) : lab(l), port(p) {
        test::require_program("python3");
        test::require_program("ss");
        lab.dir.write("server.py", k_server_py);
        lab.only_through_jump("127.0.0.2", port);
    }
    void start() {
        server = std::make_unique<BackgroundProcess>(
            std::vector<std::string>{"python3", (lab.dir.path() / "server.py").string(),
                                     "127.0.0.2", std::to_string(port)},
            lab.dir.path() / fmt::format("server-{}.log", port));
        // Readiness through a process the rule lets pass would need the jump user: wait for the
        // listening socket instead.
        for (int i = 0; i < 100; ++i) {
            if (run_process({"ss", "-Hltn", fmt::format("sport = :{}", port)})
                    .out.find("127.0.0.2") != std::string::npos)
                return;
            std::this_thread::sleep_for(100ms);
        }
        throw std::runtime_error("the HTTP server did not listen: " + server->log());
    }
    remote::ConnectOptions options() const {
        remote::ConnectOptions o;
        o.endpoint = {"127.0.0.2", port, "unused"};
        o.jump = lab.jump_host();
        o.known_hosts = lab.known_hosts.string();
        o.connect_timeout = 3s;
        o.io_timeout = 5s;
        return o;
    }
};

/// How one HTTP exchange over a raw socket ended.
struct Exchange {
    std::string response;
    bool eof = false;   ///< the server side closed (FIN)
    bool reset = false; ///< ECONNRESET (or refused)
    bool timed_out = false;
    std::chrono::milliseconds took{0};

    std::string body() const {
        const auto at = response.find("\r\n\r\n");
        return at == std::string::npos ? std::string() : response.substr(at + 4);
    }
    bool ok() const { return response.rfind("HTTP/1.1 200", 0) == 0; }
};

/// Sends `request` to 127.0.0.1:`port` and reads until the peer closes, a reset or `limit`.
/// `on_bytes` sees the running count of received bytes.
Exchange exchange(int port, const std::string& request, std::chrono::milliseconds limit,
                  const std::function<void(std::size_t)>& on_bytes = {}) {
    Exchange ex;
    const auto start = Clock::now();
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ex.reset = true;
        ::close(fd);
        return ex;
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    std::size_t sent = 0;
    std::vector<char> buf(64 * 1024);
    while (true) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(start + limit - Clock::now());
        if (left.count() <= 0) {
            ex.timed_out = true;
            break;
        }
        pollfd p{fd, POLLIN, 0};
        if (sent < request.size())
            p.events |= POLLOUT;
        ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 100)));
        if (sent < request.size()) {
            const auto n = ::send(fd, request.data() + sent, request.size() - sent,
                                  MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0)
                sent += static_cast<std::size_t>(n);
            else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                ex.reset = true;
                break;
            }
        }
        const auto n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
        if (n > 0) {
            ex.response.append(buf.data(), static_cast<std::size_t>(n));
            if (on_bytes)
                on_bytes(ex.response.size());
        } else if (n == 0) {
            ex.eof = true;
            break;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            ex.reset = true;
            break;
        }
    }
    ::close(fd);
    ex.took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
    return ex;
}

/// Whether this process (not the jump user) can open a TCP connection to ip:port.
bool can_connect(const char* ip, int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    REQUIRE(::inet_pton(AF_INET, ip, &a.sin_addr) == 1);
    const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

std::string get(const std::string& path) {
    return fmt::format("GET {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
}

std::string post(const std::string& body) {
    return fmt::format("POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                       "Content-Length: {}\r\n\r\n",
                       body.size()) +
           body;
}

std::size_t thread_count() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/task"))
        ++n;
    return n;
}

/// CPU time this process spends while it sleeps for `span`: a pump thread that spins uses
/// about all of it, one that waits in poll() next to nothing.
std::chrono::milliseconds cpu_used_during(std::chrono::milliseconds span) {
    const auto cpu = [] {
        timespec ts{};
        ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
    };
    const auto before = cpu();
    std::this_thread::sleep_for(span);
    return std::chrono::duration_cast<std::chrono::milliseconds>(cpu() - before);
}

/// The sshd processes of the jump host's login user (its session processes).
std::size_t jump_sessions(const JumpHostFixture& lab) {
    const auto r = run_process({"pgrep", "-c", "-u", lab.jump_user.name()});
    return static_cast<std::size_t>(std::atoi(r.out.c_str()));
}

} // namespace

TEST_CASE("a port forward through the jump host reaches an HTTP server only the jump can reach: "
          "eight connections at once, 8 MiB each way, one client gone mid-transfer",
          "[remote][jump][forward]") {
    enter_private_netns();
    JumpHostFixture lab;
    HttpTarget target(lab, 8088);
    target.start();
    const auto threads_before = thread_count();
    {
        auto forward = remote::Forward::open(target.options());
        CHECK(forward->target().host == "127.0.0.2");
        CHECK(forward->via() == lab.jump_name());
        // The rule holds: from here the server refuses, through the forward it answers.
        CHECK_FALSE(can_connect("127.0.0.2", 8088));
        const auto hello = exchange(forward->local_port(), get("/hello"), 10s);
        INFO(hello.response);
        CHECK(hello.ok());
        CHECK(hello.body() == "hello /hello");

        const std::string upload(8 * 1024 * 1024, 'u');
        std::vector<Exchange> results(8);
        std::vector<std::thread> clients;
        for (std::size_t i = 0; i < results.size(); ++i)
            clients.emplace_back([&, i] {
                if (i == 0)
                    results[i] = exchange(forward->local_port(), post(upload), 60s);
                else if (i == 1)
                    results[i] = exchange(forward->local_port(), get("/big/8388608"), 60s);
                else
                    results[i] =
                        exchange(forward->local_port(), get(fmt::format("/hello/{}", i)), 60s);
            });
        // A client that gives up in the middle of a download: only its connection ends.
        std::thread quitter([&] { exchange(forward->local_port(), get("/slow"), 1500ms); });
        for (auto& c : clients)
            c.join();
        quitter.join();
        CHECK(results[0].ok());
        CHECK(results[0].body() == upload);
        CHECK(results[1].ok());
        CHECK(results[1].body().size() == 8388608);
        CHECK(results[1].body().substr(0, 32) == "0123456789abcdef0123456789abcdef");
        for (std::size_t i = 2; i < results.size(); ++i) {
            INFO("client " << i << ": " << results[i].response);
            CHECK(results[i].body() == fmt::format("hello /hello/{}", i));
        }
        const auto after = exchange(forward->local_port(), get("/hello/after"), 10s);
        CHECK(after.body() == "hello /hello/after");
        CHECK(forward->failure().empty());
        // One jump session serves every connection.
        CHECK(jump_sessions(lab) == 1);
        // Idle, the pump waits in poll().
        CHECK(cpu_used_during(1s) < 200ms);
    }
    CHECK(thread_count() == threads_before);
    // The jump session ended with the forward (its sshd session process is gone).
    bool gone = false;
    for (int i = 0; i < 50 && !gone; ++i) {
        gone = jump_sessions(lab) == 0;
        if (!gone)
            std::this_thread::sleep_for(100ms);
    }
    CHECK(gone);
}

TEST_CASE("a forwarded connection the target refuses is reset alone: the forward serves the next "
          "one once the server listens",
          "[remote][jump][forward]") {
    enter_private_netns();
    JumpHostFixture lab;
    HttpTarget target(lab, 8089);
    auto forward = remote::Forward::open(target.options()); // nothing listens yet
    const auto refused = exchange(forward->local_port(), get("/hello"), 10s);
    CHECK((refused.reset || refused.eof));
    CHECK(refused.response.empty());
    CHECK(refused.took < 5s);
    CHECK(forward->failure().empty());

    target.start();
    const auto served = exchange(forward->local_port(), get("/hello"), 10s);
    INFO(served.response);
    CHECK(served.body() == "hello /hello");
}

TEST_CASE("the jump host killed mid-transfer: the connection ends within seconds, new ones are "
          "reset, failure names the jump host, the destructor returns within 3 s and no thread is "
          "left",
          "[remote][jump][forward][fault]") {
    enter_private_netns();
    JumpHostFixture lab;
    HttpTarget target(lab, 8090);
    target.start();
    const auto threads_before = thread_count();
    auto forward = remote::Forward::open(target.options());
    const int port = forward->local_port();
    Clock::time_point killed{};
    std::thread killer;
    const auto cut = exchange(port, get("/slow"), 30s, [&](std::size_t bytes) {
        if (bytes > 512 * 1024 && !killer.joinable()) {
            killed = Clock::now();
            killer = std::thread([&] { lab.kill_jump_sessions(); });
        }
    });
    if (killer.joinable())
        killer.join();
    REQUIRE(killed != Clock::time_point{});
    CHECK_FALSE(cut.timed_out);
    CHECK((cut.reset || cut.eof));
    const auto ended_after = Clock::now() - killed;
    CHECK(ended_after < 5s);

    // Once the session is gone nothing is accepted through it (the port stays taken).
    bool failure_named = false;
    for (int i = 0; i < 50 && !failure_named; ++i) {
        failure_named = contains(forward->failure(), "jump host");
        if (!failure_named)
            std::this_thread::sleep_for(100ms);
    }
    INFO(forward->failure());
    CHECK(failure_named);
    const auto later = exchange(port, get("/hello"), 5s);
    CHECK((later.reset || later.eof));
    CHECK(later.response.empty());
    CHECK(later.took < 2s);
    // Its dead session's socket is no longer polled: nothing spins until the owner ends it.
    CHECK(cpu_used_during(1s) < 200ms);

    const auto t0 = Clock::now();
    forward.reset();
    CHECK(Clock::now() - t0 < 3s);
    CHECK(thread_count() == threads_before);
}

TEST_CASE("a jump host that stops answering with a connection open: the forward's destructor "
          "returns within 3 s",
          "[remote][jump][forward][fault]") {
    enter_private_netns();
    JumpHostFixture lab;
    HttpTarget target(lab, 8091);
    target.start();
    const auto threads_before = thread_count();
    auto forward = remote::Forward::open(target.options());
    std::thread client([&] { exchange(forward->local_port(), get("/slow"), 8s); });
    std::this_thread::sleep_for(1s);
    lab.kill_jump_sessions("-STOP"); // alive, but silent: no close will be answered
    std::this_thread::sleep_for(300ms);
    const auto t0 = Clock::now();
    forward.reset();
    const auto took = Clock::now() - t0;
    lab.kill_jump_sessions("-KILL");
    client.join();
    CHECK(took < 3s);
    CHECK(thread_count() == threads_before);
}

TEST_CASE("a port forward's jump host key is pinned: unpinned and mismatched keys are refused, "
          "never trusted on first use",
          "[remote][jump][forward]") {
    enter_private_netns();
    JumpHostFixture lab;
    HttpTarget target(lab, 8092);
    auto o = target.options();
    lab.dir.write("empty_known_hosts", "");
    o.known_hosts = (lab.dir.path() / "empty_known_hosts").string();
    const std::string pattern = fmt::format("[{}]:{}", lab.jump.host(), lab.jump.port());
    try {
        remote::Forward::open(o);
        FAIL("a forward through an unpinned jump host");
    } catch (const remote::HostKeyError& e) {
        CHECK(e.reason() == remote::HostKeyError::Reason::unpinned);
        CHECK(contains(e.what(), "jump host: host key of " + pattern));
    }
    test::SshServer impostor;
    std::string wrong = test::read_file(impostor.known_hosts());
    wrong.replace(0, wrong.find(' '), pattern);
    lab.dir.write("wrong_known_hosts", wrong);
    o.known_hosts = (lab.dir.path() / "wrong_known_hosts").string();
    try {
        remote::Forward::open(o);
        FAIL("a forward through a jump host whose key does not match");
    } catch (const remote::HostKeyError& e) {
        CHECK(e.reason() == remote::HostKeyError::Reason::mismatch);
        CHECK(contains(e.what(), "jump host: host key mismatch for " + pattern));
    }
}
