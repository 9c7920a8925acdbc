// The host firewall's ruleset (firewall_ruleset) against nft and the kernel, in network
// namespaces this test creates (the host's own rules are never read or touched):
// - `nft -c -f` (inside `unshare --net`) accepts the default ruleset and one with sources and
//   ports, and refuses a broken one (the check is real);
// - applied in a "server" namespace, a "client" namespace joined to it by a veth pair reaches the
//   SSH port and an opened port, and not a port the policy does not name (dropped: the connect
//   times out); replaced by a policy whose SSH sources leave the client out, the SSH port is
//   dropped for it too, and the table is replaced, not added to.

#include <fmt/format.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include <labctl/core/process.hpp>
#include <labctl/harden/firewall.hpp>

#include "background.hpp"
#include "skip.hpp"
#include "support.hpp"

using namespace labctl;
using namespace labctl::harden;
using namespace std::chrono_literals;

namespace {

void require_root_nft() {
    if (::geteuid() != 0)
        test::skip("nft and network namespaces need root");
    for (const char* p : {"nft", "unshare", "ip", "python3"})
        test::require_program(p);
}

ProcessResult run_with_input(const std::vector<std::string>& argv, const std::string& input) {
    ProcessOptions o;
    o.stdin_data = input;
    o.timeout = 30s;
    return run_process(argv, o);
}

/// Two named network namespaces of this test joined by a veth pair (10.199.77.1 server,
/// 10.199.77.2 client), removed with everything in them when the object goes away.
class NamespacePair {
public:
    NamespacePair()
        : srv(fmt::format("labctl-fw-{}-srv", ::getpid())),
          cli(fmt::format("labctl-fw-{}-cli", ::getpid())) {
        remove();
        for (const auto& cmd : std::vector<std::vector<std::string>>{
                 {"ip", "netns", "add", srv},
                 {"ip", "netns", "add", cli},
                 {"ip", "link", "add", "fw0", "netns", srv, "type", "veth", "peer", "name", "fw1",
                  "netns", cli},
                 {"ip", "-n", srv, "addr", "add", "10.199.77.1/24", "dev", "fw0"},
                 {"ip", "-n", cli, "addr", "add", "10.199.77.2/24", "dev", "fw1"},
                 {"ip", "-n", srv, "link", "set", "fw0", "up"},
                 {"ip", "-n", cli, "link", "set", "fw1", "up"},
                 {"ip", "-n", srv, "link", "set", "lo", "up"},
                 {"ip", "-n", cli, "link", "set", "lo", "up"}}) {
            const auto r = run_process(cmd, {.timeout = 10s});
            INFO(fmt::format("{}: {}", fmt::join(cmd, " "), r.err));
            REQUIRE(r.ok());
        }
    }
    ~NamespacePair() { remove(); }
    NamespacePair(const NamespacePair&) = delete;
    NamespacePair& operator=(const NamespacePair&) = delete;

    /// True when the client can open a TCP connection to the server's port within 2 s.
    bool client_reaches(int port) const {
        const auto r =
            run_process({"ip", "netns", "exec", cli, "python3", "-c",
                         fmt::format("import socket; socket.create_connection(('10.199.77.1', {}), "
                                     "timeout=2).close()",
                                     port)},
                        {.timeout = 20s});
        return r.ok();
    }

    const std::string srv, cli;

private:
    void remove() const {
        // Deleting a namespace ends its veth end too; a process still in it keeps it alive, and
        // the listener is stopped before this runs.
        run_process({"ip", "netns", "del", srv}, {.timeout = 10s});
        run_process({"ip", "netns", "del", cli}, {.timeout = 10s});
    }
};

} // namespace

TEST_CASE("nft accepts the firewall ruleset (default, and with sources and ports) and refuses a "
          "broken one",
          "[harden][firewall]") {
    require_root_nft();
    FirewallPolicy full;
    full.ssh_port = 2222;
    full.ssh_sources = {"10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "::1"};
    full.open_ports = {{"tcp", 8080, 0, "compose: frontend"},
                       {"udp", 4000, 4010, "compose: app"},
                       {"tcp", 9090, 0, "compose: prometheus"}};
    for (const auto& policy : {FirewallPolicy{}, full}) {
        const std::string ruleset = firewall_ruleset(policy);
        const auto r = run_with_input({"unshare", "--net", "nft", "-c", "-f", "-"}, ruleset);
        INFO(ruleset << "\nnft: " << r.err << r.out);
        CHECK(r.exit_code == 0);
    }
    std::string broken = firewall_ruleset({});
    broken.replace(broken.find("policy drop"), 11, "policy dorp");
    const auto r = run_with_input({"unshare", "--net", "nft", "-c", "-f", "-"}, broken);
    CHECK(r.exit_code != 0);
}

TEST_CASE("applied in a namespace, the firewall lets a client reach SSH and the opened port, "
          "drops the others, and a new policy replaces it",
          "[harden][firewall]") {
    require_root_nft();
    NamespacePair ns;
    test::TempDir dir;
    // One listener for the three ports, inside the server namespace.
    test::BackgroundProcess listener(
        {"ip", "netns", "exec", ns.srv, "python3", "-c",
         "import socket, select\n"
         "ls = []\n"
         "for p in (2222, 8080, 5555):\n"
         "    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
         "    s.bind(('0.0.0.0', p)); s.listen(8); ls.append(s)\n"
         "while True:\n"
         "    for s in select.select(ls, [], [])[0]:\n"
         "        s.accept()[0].close()\n"},
        dir.path() / "listener.log");
    // Before any rule every port answers (the listener is up).
    bool up = false;
    for (int i = 0; i < 50 && !up; ++i) {
        up = ns.client_reaches(5555);
        if (!up)
            ::usleep(100'000);
    }
    INFO(listener.log());
    REQUIRE(up);

    FirewallPolicy p;
    p.ssh_port = 2222;
    p.ssh_sources = {"10.199.77.2"};
    p.open_ports = {{"tcp", 8080, 0, "compose: frontend"}};
    auto r = run_with_input({"ip", "netns", "exec", ns.srv, "nft", "-f", "-"}, firewall_ruleset(p));
    INFO(r.err);
    REQUIRE(r.ok());
    CHECK(ns.client_reaches(2222));
    CHECK(ns.client_reaches(8080));
    CHECK_FALSE(ns.client_reaches(5555));

    // SSH only from another address now: the client is dropped there too; one table, replaced.
    p.ssh_sources = {"10.199.77.99"};
    r = run_with_input({"ip", "netns", "exec", ns.srv, "nft", "-f", "-"}, firewall_ruleset(p));
    INFO(r.err);
    REQUIRE(r.ok());
    CHECK_FALSE(ns.client_reaches(2222));
    CHECK(ns.client_reaches(8080));
    const auto listed =
        run_process({"ip", "netns", "exec", ns.srv, "nft", "list", "tables"}, {.timeout = 10s});
    CHECK(listed.out == "table inet labctl\n");
    listener.stop();
}
