// LabSpec::ssh_destinations, what `labctl __complete hosts` prints for the shells to offer after
// --host: every VM as USER@HOST:PORT exactly as labctl reaches it (mode nat: its address and
// ssh.port; mode user: 127.0.0.1 and its ssh forward), then deploy.host; never a jump host.

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include <labctl/config/loader.hpp>
#include <labctl/remote/session.hpp>

using labctl::config::format;
using labctl::config::LabSpec;
using labctl::config::load_lab_text;
using labctl::config::LoadOptions;
using Destinations = std::vector<std::string>;

namespace {

LabSpec load_ok(const std::string& text, LoadOptions o = {}) {
    const auto r = load_lab_text(text, "lab.yaml", o);
    std::vector<std::string> problems;
    for (const auto& d : r.diagnostics)
        problems.push_back(format(d));
    INFO(fmt::format("{}", fmt::join(problems, "\n")));
    REQUIRE(r.ok());
    return *r.spec;
}

/// Each destination, read back the way --host is read, is the endpoint labctl connects to for
/// that VM (ssh_address, ssh.user).
void check_reads_back_as_vms(const LabSpec& spec, const Destinations& destinations) {
    REQUIRE(destinations.size() >= spec.vms.size());
    for (std::size_t i = 0; i < spec.vms.size(); ++i) {
        INFO(destinations[i]);
        const auto ep = labctl::remote::parse_endpoint(destinations[i], {"", 1, "nobody"});
        const auto at = spec.ssh_address(spec.vms[i]);
        CHECK(ep.user == spec.ssh.user);
        CHECK(ep.host == at.host);
        CHECK(ep.port == at.port);
    }
}

} // namespace

TEST_CASE("ssh destinations in mode nat: each VM's address and ssh.port as ssh.user, no jump host",
          "[config][destinations]") {
    const auto spec = load_ok(R"(version: 1
project: natlab
ssh:
  user: admin
  port: 2200
  jump: ops@jump.example.org:2022
vms:
  - name: alpha
    ip: 10.66.77.20
  - name: beta
)");
    const auto destinations = spec.ssh_destinations();
    CHECK(destinations == Destinations{"admin@10.66.77.20:2200", "admin@10.66.77.10:2200"});
    check_reads_back_as_vms(spec, destinations);
    REQUIRE(spec.jump_host().has_value()); // the lab has a jump, and it is not offered
    for (const auto& d : destinations)
        CHECK(d.find("jump.example.org") == std::string::npos);
}

TEST_CASE("ssh destinations of several hosts: every VM on every host, not the qemu+ssh hosts "
          "their VMs are reached through",
          "[config][destinations]") {
    const auto spec = load_ok(R"(version: 1
project: multi
hosts:
  kvm1: {uri: "qemu+ssh://root@kvm1.example.org/system"}
  kvm2: {uri: "qemu+ssh://ops@kvm2.example.org:2222/system", jump: "admin@bastion:2022"}
vms:
  - name: web
  - name: db
    host: kvm2
)");
    REQUIRE(spec.jump_for(spec.hosts[0]).has_value());
    REQUIRE(spec.jump_for(spec.hosts[1]).has_value());
    const auto destinations = spec.ssh_destinations();
    CHECK(destinations == Destinations{"labctl@10.66.77.10:22", "labctl@10.66.77.11:22"});
    check_reads_back_as_vms(spec, destinations);
}

TEST_CASE("ssh destinations in mode user: 127.0.0.1 and each VM's own ssh forward",
          "[config][destinations]") {
    const auto spec = load_ok(R"(version: 1
project: userlab
network:
  mode: user
  forwards:
    - {guest: 22, host: 2522}
    - {guest: 8080, host: 8080}
ssh:
  user: admin
vms:
  - name: one
  - name: two
)");
    const auto destinations = spec.ssh_destinations();
    // the n-th VM binds every forward's host port + n
    CHECK(destinations == Destinations{"admin@127.0.0.1:2522", "admin@127.0.0.1:2523"});
    check_reads_back_as_vms(spec, destinations);

    // without an ssh forward in lab.yaml, the one labctl adds (2222)
    const auto plain = load_ok(R"(version: 1
project: userlab
network: {mode: user}
vms:
  - name: one
)");
    CHECK(plain.ssh_destinations() == Destinations{"labctl@127.0.0.1:2222"});
}

TEST_CASE("ssh destinations end with deploy.host, ssh.user and ssh.port filling what it leaves "
          "out",
          "[config][destinations]") {
    const std::string head = "version: 1\nproject: hostlab\nssh: {user: admin, port: 2200}\n"
                             "vms:\n  - name: alpha\n    ip: 10.66.77.20\n";
    const std::vector<std::pair<std::string, std::string>> cases{
        {"deployer@192.0.2.7", "deployer@192.0.2.7:2200"},
        {"192.0.2.8:2201", "admin@192.0.2.8:2201"},
        {"lab.example.org", "admin@lab.example.org:2200"},
        {"ops@[2001:db8::5]:2222", "ops@[2001:db8::5]:2222"},
        {"2001:db8::6", "admin@[2001:db8::6]:2200"},
    };
    for (const auto& [host, expected] : cases) {
        INFO("deploy.host: " << host);
        const auto spec = load_ok(head + "deploy:\n  host: \"" + host + "\"\n");
        const auto destinations = spec.ssh_destinations();
        CHECK(destinations == Destinations{"admin@10.66.77.20:2200", expected});
        // read back as --host is, it is the endpoint deploy.host stands for
        const auto back = labctl::remote::parse_endpoint(destinations.back(), {"", 1, "nobody"});
        const auto direct = labctl::remote::parse_endpoint(host, {"", 2200, "admin"});
        CHECK(back.user == direct.user);
        CHECK(back.host == direct.host);
        CHECK(back.port == direct.port);
    }

    // LAB_HOST sets deploy.host too
    LoadOptions o;
    o.env = {{"LAB_HOST", "ci@192.0.2.9"}};
    CHECK(load_ok(head, o).ssh_destinations() ==
          Destinations{"admin@10.66.77.20:2200", "ci@192.0.2.9:2200"});

    // deploy.host naming a VM's own destination is offered once
    CHECK(load_ok(head + "deploy: {host: \"10.66.77.20\"}\n").ssh_destinations() ==
          Destinations{"admin@10.66.77.20:2200"});

    // without deploy.host: only the VMs
    CHECK(load_ok(head).ssh_destinations() == Destinations{"admin@10.66.77.20:2200"});
}
