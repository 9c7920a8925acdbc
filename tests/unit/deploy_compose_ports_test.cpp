// parse_compose_ports: the ports a stack publishes, from `compose config` output (pure).
// The v1 fixture is Debian 12's docker-compose 1.29.2 printing this file's config:
//   services:
//     web:
//       image: busybox
//       ports: ["0.0.0.0:8080:80", "127.0.0.1:9000:9000", "5353:53/udp", "7000-7002:7000-7002",
//               "80", "[::1]:8443:443"]
//     db:
//       image: busybox
//       ports: [{target: 5432, published: 15432, protocol: tcp}]

#include <catch2/catch.hpp>
#include <string>

#include <labctl/core/error.hpp>
#include <labctl/deploy/compose_ports.hpp>

#include "support.hpp"

using namespace labctl;
using namespace labctl::deploy;

namespace {

std::string describe(const PublishedPort& p) {
    return p.service + " " + p.host_ip + ":" + std::to_string(p.first) +
           (p.last != 0 ? "-" + std::to_string(p.last) : "") + "/" + p.protocol;
}

} // namespace

TEST_CASE("docker-compose 1.x config: every published port, loopback and random ones skipped",
          "[deploy][compose]") {
    const auto ports =
        parse_compose_ports(test::read_file(test::fixture("compose/config-ports-v1.yaml")));
    std::vector<std::string> got;
    for (const auto& p : ports.published)
        got.push_back(describe(p));
    // compose 1.x expands a range into one mapping per port.
    CHECK(got == std::vector<std::string>{"db :15432/tcp", "web 0.0.0.0:8080/tcp", "web :5353/udp",
                                          "web :7000/tcp", "web :7001/tcp", "web :7002/tcp"});
    CHECK(ports.skipped ==
          std::vector<std::string>{"web: 127.0.0.1:9000/tcp (loopback only)",
                                   "web: container port 80/tcp on a random host port",
                                   "web: ::1:8443/tcp (loopback only)"});
}

TEST_CASE("Compose v2 config: the long syntax with host_ip and a published range",
          "[deploy][compose]") {
    // compose-spec/compose-spec@master:05-services.md, "ports" long syntax: target, host_ip,
    // published (a string, may be a range), protocol, mode; Compose v2's config prints it so.
    const auto ports = parse_compose_ports(R"(name: lab
services:
  frontend:
    image: nginx
    ports:
      - mode: ingress
        host_ip: 0.0.0.0
        target: 80
        published: "8080"
        protocol: tcp
      - mode: ingress
        target: 7000
        published: 7000-7002
        protocol: udp
      - mode: ingress
        host_ip: 127.0.0.1
        target: 9090
        published: "9090"
        protocol: tcp
  worker:
    image: busybox
)");
    REQUIRE(ports.published.size() == 2);
    CHECK(describe(ports.published[0]) == "frontend 0.0.0.0:8080/tcp");
    CHECK(describe(ports.published[1]) == "frontend :7000-7002/udp");
    CHECK(ports.skipped ==
          std::vector<std::string>{"frontend: 127.0.0.1:9090/tcp (loopback only)"});
}

TEST_CASE("a port that is not a number, or text that is not YAML, is a deploy error",
          "[deploy][compose]") {
    std::string message;
    CHECK(test::exit_code_of(
              [] {
                  parse_compose_ports("services:\n  web:\n    ports:\n    - 0.0.0.0:http:80/tcp\n");
              },
              &message) == 7);
    CHECK(test::contains(message, "service 'web': 'http' is not a port number"));
    CHECK(test::exit_code_of([] { parse_compose_ports("services: [unclosed\n"); }) == 7);
    CHECK(parse_compose_ports("version: '2.4'\n").published.empty());
}
