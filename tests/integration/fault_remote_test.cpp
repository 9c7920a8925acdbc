// Fault cases for remote::Session and deploy::sync against real servers on loopback: a silent
// TCP server, sshd killed mid-command, connections reset (through a relay this test owns) during
// an SFTP upload and during a streamed stdin, remote commands that outlive their deadline, rsync
// killed mid-transfer. Each case asserts the error kind and message, that it ended within its
// bound, and that nothing was left behind (processes here and on the "target", which is this
// machine; temporary files).

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <labctl/core/error.hpp>
#include <labctl/core/signals.hpp>
#include <labctl/deploy/sync.hpp>
#include <labctl/remote/session.hpp>

#include "fault_support.hpp"
#include "skip.hpp"
#include "sshd.hpp"
#include "support.hpp"
#include "test_user.hpp"

using namespace labctl;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

remote::ConnectOptions options_for(const test::SshServer& sshd, int port = 0) {
    auto o = sshd.login();
    if (port != 0)
        o.endpoint.port = port;
    o.io_timeout = 5s;
    return o;
}

using labctl::test::contains;

/// The known_hosts of `sshd`, re-pinned for the relay's port.
std::string known_hosts_for_port(const test::SshServer& sshd, int port, const fs::path& dir) {
    std::ifstream in(sshd.host_key_pub());
    std::string type, key;
    in >> type >> key;
    const auto path = dir / "known_hosts_relay";
    std::ofstream(path) << fmt::format("[{}]:{} {} {}\n", sshd.host(), port, type, key);
    return path.string();
}

/// Processes whose ancestry leads to `root` and whose command name is sshd (the per-connection
/// server processes, not the commands they run).
std::vector<pid_t> sshd_session_processes(pid_t listener) {
    std::vector<pid_t> out;
    for (const pid_t p : test::descendants(listener))
        if (test::process_name(p) == "sshd")
            out.push_back(p);
    return out;
}

double process_cpu_seconds() {
    timespec ts{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

} // namespace

TEST_CASE("connect to a server that accepts and never sends a banner times out with exit 4",
          "[fault][remote]") {
    test::SilentServer silent;
    remote::ConnectOptions o;
    o.endpoint = {"127.0.0.1", silent.port(), "nobody"};
    o.known_hosts = "/dev/null";
    o.connect_timeout = 2s;
    o.io_timeout = 2s;
    const auto t0 = Clock::now();
    try {
        remote::Session::connect(o);
        FAIL("connected to a server that never spoke SSH");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::timeout);
        CHECK(contains(e.what(), "handshake"));
        CHECK(contains(e.what(), "timed out"));
        CHECK(contains(e.what(), fmt::format("127.0.0.1:{}", silent.port())));
    }
    const auto took = Clock::now() - t0;
    CHECK(took >= 1500ms);
    CHECK(took < 10s);
    CHECK(silent.accepted() >= 1);
    CHECK(test::children_of_self().empty());
}

TEST_CASE("exec whose sshd is killed mid-command fails promptly without a busy loop",
          "[fault][remote]") {
    test::SshServer sshd;
    const auto marker = test::unique_marker("sshd-killed");
    auto session = remote::Session::connect(options_for(sshd));
    std::atomic<bool> killed{false};
    std::thread killer([&] {
        // Once the command runs, SIGKILL the per-connection sshd processes (the listener stays).
        for (int i = 0; i < 100 && test::processes_matching(marker).empty(); ++i)
            std::this_thread::sleep_for(50ms);
        for (const pid_t p : sshd_session_processes(test::pid_of_listener(sshd)))
            ::kill(p, SIGKILL);
        killed = true;
    });
    const double cpu0 = process_cpu_seconds();
    const auto t0 = Clock::now();
    try {
        // A timeout only so that the unfixed code (a busy loop) ends at all.
        session.exec("sleep 60; true # " + marker, {.timeout = 20s});
        FAIL("exec returned normally although its connection died");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::ssh);
        CHECK(contains(e.what(), "lost"));
        CHECK(contains(e.what(), sshd.host()));
        CHECK(contains(e.what(), "sleep 60"));
    }
    const auto took = Clock::now() - t0;
    const double cpu = process_cpu_seconds() - cpu0;
    killer.join();
    CHECK(killed);
    CHECK(took < 8s);
    CHECK(cpu < 1.5); // a busy loop burns a core for the whole wait
    // The command itself outlives a dead sshd (nothing can reach it): end it here.
    test::kill_matching(marker);
    CHECK(test::wait_gone(marker, 5s));
    CHECK(test::children_of_self().size() == 1); // the sshd listener only
}

TEST_CASE("peer reset during an SFTP upload fails naming the file and leaves the target as it was",
          "[fault][remote]") {
    test::SshServer sshd;
    test::TcpRelay relay("127.0.0.1", sshd.port());
    test::TempDir dir;
    auto o = options_for(sshd, relay.port());
    o.known_hosts = known_hosts_for_port(sshd, relay.port(), dir.path());
    auto session = remote::Session::connect(o);
    const auto target = dir.path() / "big.bin";
    std::ofstream(target) << "old content\n";
    relay.reset_after_upstream_bytes(relay.upstream_bytes() + 2 * 1024 * 1024);
    const std::string content(256u * 1024 * 1024, 'x');
    const auto t0 = Clock::now();
    try {
        session.upload(target.string(), content, 0644);
        FAIL("upload succeeded through a reset connection");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::ssh);
        CHECK(contains(e.what(), "sftp"));
        CHECK(contains(e.what(), target.string()));
        CHECK(contains(e.what(), "was not changed"));
    }
    CHECK(Clock::now() - t0 < 15s);
    CHECK(relay.was_reset());
    CHECK(test::read_file(target) == "old content\n");
    // sftp-server ends with its connection; the partial temporary file is the next upload's to
    // remove (the target host cannot be reached to remove it now).
    const pid_t listener = test::pid_of_listener(sshd);
    CHECK(test::wait_until(
        [&] {
            for (const pid_t p : test::descendants(listener))
                if (test::process_name(p) == "sftp-server")
                    return false;
            return true;
        },
        5s));
    auto again = remote::Session::connect(options_for(sshd));
    again.upload(target.string(), "new\n", 0644);
    CHECK(test::read_file(target) == "new\n");
    std::vector<std::string> leftovers;
    for (const auto& e : fs::directory_iterator(dir.path()))
        if (contains(e.path().filename().string(), ".labctl-tmp-"))
            leftovers.push_back(e.path().string());
    CHECK(leftovers.empty());
}

TEST_CASE("peer reset during a streamed stdin (the docker load path) fails promptly",
          "[fault][remote]") {
    test::SshServer sshd;
    test::TcpRelay relay("127.0.0.1", sshd.port());
    test::TempDir dir;
    auto o = options_for(sshd, relay.port());
    o.known_hosts = known_hosts_for_port(sshd, relay.port(), dir.path());
    auto session = remote::Session::connect(o);
    const auto marker = test::unique_marker("stream-reset");
    relay.reset_after_upstream_bytes(relay.upstream_bytes() + 8 * 1024 * 1024);
    std::uint64_t fed = 0;
    remote::ExecOptions ex;
    ex.phase = "docker load";
    ex.stdin_source = [&](char* buf, std::size_t size) -> std::size_t {
        if (fed >= (4ull << 30))
            return 0; // 4 GiB: never reached
        std::memset(buf, 'z', size);
        fed += size;
        return size;
    };
    const auto t0 = Clock::now();
    try {
        session.exec("cat >/dev/null; echo done # " + marker, ex);
        FAIL("the stream went through a reset connection");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::ssh);
        CHECK(contains(e.what(), "docker load"));
        CHECK(contains(e.what(), "lost"));
        CHECK(contains(e.what(), sshd.host()));
    }
    CHECK(Clock::now() - t0 < 15s);
    CHECK(relay.was_reset());
    CHECK(fed < (1ull << 30));
    // The remote side sees its stdin end: `cat` and its shell exit on their own.
    CHECK(test::wait_gone(marker, 10s));
    CHECK(test::children_of_self().size() == 1);
}

TEST_CASE("a silent remote command with no caller timeout ends at the default deadline and is "
          "gone",
          "[fault][remote]") {
    test::SshServer sshd;
    auto o = options_for(sshd);
    o.exec_timeout = 2s; // the 30 min default, shortened for the test
    auto session = remote::Session::connect(o);
    const auto marker = test::unique_marker("silent");
    const auto t0 = Clock::now();
    try {
        session.exec("sleep 300; true # " + marker, {.phase = "silent step"});
        FAIL("a silent command without a timeout returned");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::timeout);
        CHECK(contains(e.what(), "silent step"));
        CHECK(contains(e.what(), "default deadline of 2 s"));
        CHECK(contains(e.what(), sshd.host()));
    }
    const auto took = Clock::now() - t0;
    CHECK(took >= 2s);
    CHECK(took < 20s);
    CHECK(test::processes_matching(marker).empty());
    // The session is still usable afterwards.
    CHECK(session.exec("echo ok", {.timeout = 60s}).out == "ok\n");
}

TEST_CASE("a remote command that outlives its timeout is ended with its children",
          "[fault][remote]") {
    test::SshServer sshd;
    auto session = remote::Session::connect(options_for(sshd));
    const auto parent = test::unique_marker("parent");
    const auto child = test::unique_marker("child");
    const auto t0 = Clock::now();
    // The child ignores SIGTERM: only the KILL after the grace period ends it.
    const auto r = session.exec(
        fmt::format("sh -c 'trap \"\" TERM; sleep 300; true # {}' & sleep 300; true # {}", child,
                    parent),
        {.timeout = 1s});
    const auto took = Clock::now() - t0;
    CHECK(r.timed_out);
    CHECK_FALSE(r.ok());
    CHECK(took < 15s);
    CHECK(test::wait_gone(parent, 3s));
    CHECK(test::wait_gone(child, 3s));
    CHECK(session.exec("true").ok());
}

TEST_CASE("rsync killed mid-transfer gives a clear deploy error", "[fault][sync]") {
    test::require_program("rsync");
    test::TestUser user;
    test::SshServer sshd{{.listen_address = "127.0.0.6"}};
    test::TempDir dir;
    const auto remote = dir.path() / "remote" / "stack";
    dir.write(".labctl/ssh_config",
              fmt::format("Host box\n    HostName {}\n    Port {}\n    User {}\n"
                          "    IdentityFile {}\n    IdentitiesOnly yes\n"
                          "    UserKnownHostsFile {}\n    StrictHostKeyChecking yes\n",
                          sshd.host(), sshd.port(), user.name(), sshd.client_key().string(),
                          sshd.known_hosts().string()));
    fs::create_directories(dir.path() / "stack");
    {
        // Incompressible, so -z cannot make it instant.
        std::ofstream big(dir.path() / "stack" / "big.bin", std::ios::binary);
        std::mt19937_64 rng(42);
        std::vector<std::uint64_t> block(1 << 16);
        for (int i = 0; i < 600; ++i) { // 300 MiB
            for (auto& v : block)
                v = rng();
            big.write(reinterpret_cast<const char*>(block.data()),
                      static_cast<std::streamsize>(block.size() * sizeof(std::uint64_t)));
        }
    }
    deploy::SyncOptions o;
    o.local_dir = (dir.path() / "stack").string();
    o.remote_dir = remote.string();
    o.ssh_config = (dir.path() / ".labctl" / "ssh_config").string();
    o.host_alias = "box";
    o.sudo = true;
    std::atomic<bool> killed{false};
    std::thread killer([&] {
        // The remote rsync is `rsync --server ... <remote_dir>/`; kill it once it runs.
        for (int i = 0; i < 400 && !killed; ++i) {
            for (const pid_t p : test::processes_matching(remote.string()))
                if (test::process_name(p) == "rsync" &&
                    contains(test::process_cmdline(p), "--server")) {
                    std::this_thread::sleep_for(300ms); // mid-transfer
                    ::kill(p, SIGKILL);
                    killed = true;
                }
            std::this_thread::sleep_for(50ms);
        }
    });
    const auto t0 = Clock::now();
    try {
        deploy::sync(o);
        killer.join();
        FAIL("sync succeeded although its remote rsync was killed");
    } catch (const Error& e) {
        killer.join();
        CHECK(e.code() == ExitCode::deploy);
        CHECK(contains(e.what(), "rsync to box:" + remote.string() + " failed"));
        INFO(e.what());
        // 10, 12 or 137 (the remote rsync's SIGKILL passed on): the stream broke; 255 if ssh
        // noticed first.
        const bool clear = contains(e.what(), "the transfer was cut off") ||
                           (contains(e.what(), "exit 255") && contains(e.what(), "ssh failed"));
        CHECK(clear);
        CHECK_FALSE(e.hint().empty());
    }
    CHECK(killed);
    CHECK(Clock::now() - t0 < 60s);
    CHECK(test::processes_matching(remote.string()).empty());
    CHECK(test::children_of_self().size() == 1); // the sshd listener only
}

TEST_CASE("the process-group wrapper keeps a short exec short and its output and status intact",
          "[fault][remote]") {
    test::SshServer sshd;
    auto session = remote::Session::connect(options_for(sshd));
    const auto t0 = Clock::now();
    for (int i = 0; i < 5; ++i) {
        const auto r = session.exec("echo out; echo err >&2; exit 3");
        CHECK(r.exit_status == 3);
        CHECK(r.out == "out\n");
        CHECK(r.err == "err\n"); // the PGID line is not the command's output
    }
    const auto took = Clock::now() - t0;
    INFO(std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms for 5 execs");
    // sshd with PAM takes ~1 s per session here; the wrapper must not add a wait of its own.
    CHECK(took < 30s);
}

TEST_CASE("Ctrl-C during a remote exec ends the remote process group and throws the interrupt "
          "error",
          "[fault][remote]") {
    test::SshServer sshd;
    auto session = remote::Session::connect(options_for(sshd));
    const auto marker = test::unique_marker("remote-ctrl-c");
    signals::install();
    signals::reset();
    std::thread ctrl_c([&] {
        test::wait_until([&] { return !test::processes_matching(marker).empty(); }, 20s);
        ::kill(::getpid(), SIGINT); // the handler sets the flag exec polls
    });
    const auto t0 = Clock::now();
    try {
        session.exec("sleep 300; true # " + marker, {.timeout = 60s});
        FAIL("exec returned although Ctrl-C arrived");
    } catch (const Interrupted& e) {
        CHECK(e.code() == ExitCode::interrupted);
    }
    ctrl_c.join();
    CHECK(Clock::now() - t0 < 30s);
    CHECK(test::wait_gone(marker, 3s));
    signals::reset();
}
