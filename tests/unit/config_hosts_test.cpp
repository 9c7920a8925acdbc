// hosts: several libvirt hosts in one lab: placement of the VMs, what a host inherits from the
// libvirt section and ssh.jump, the per-host views the provision module works on, the jump of
// each host's VMs, deploy.role routing, and every mistake reported at its key.

#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include <labctl/config/loader.hpp>

using labctl::config::format;
using labctl::config::LabSpec;
using labctl::config::load_lab_text;
using labctl::config::LoadOptions;
using labctl::config::LoadResult;
using labctl::config::Severity;

namespace {

std::vector<std::string> errors(const LoadResult& r) {
    std::vector<std::string> out;
    for (const auto& d : r.diagnostics)
        if (d.severity == Severity::error)
            out.push_back(format(d));
    return out;
}

bool has(const std::vector<std::string>& lines, const std::string& needle) {
    return std::any_of(lines.begin(), lines.end(),
                       [&](const std::string& l) { return l.find(needle) != std::string::npos; });
}

const std::string k_two_hosts = R"(version: 1
project: multi
libvirt:
  pool: shared-pool
  domain_type: qemu
hosts:
  kvm1:
    uri: qemu+ssh://admin@kvm1.example.org/system
  kvm2:
    uri: qemu+ssh://ops@kvm2.example.org:2222/system
    pool: fast
    jump: none
vms:
  - name: web
    roles: [stack]
  - name: db
    host: kvm2
  - name: web2
    host: kvm2
    roles: [stack]
)";

LabSpec load_ok(const std::string& text, LoadOptions o = {}) {
    const auto r = load_lab_text(text, "lab.yaml", o);
    INFO(fmt::format("{}", fmt::join(errors(r), "\n")));
    REQUIRE(r.ok());
    return *r.spec;
}

} // namespace

TEST_CASE("hosts: VMs go to the first host unless they name one, and each host takes what it "
          "leaves out from the libvirt section and ssh.jump",
          "[config][hosts]") {
    const auto spec = load_ok(k_two_hosts);
    REQUIRE(spec.hosts.size() == 2);
    CHECK(spec.several_hosts());
    CHECK(spec.hosts[0].name == "kvm1");
    CHECK(spec.hosts[0].libvirt.uri == "qemu+ssh://admin@kvm1.example.org/system");
    CHECK(spec.hosts[0].libvirt.pool == "shared-pool");
    CHECK(spec.hosts[0].libvirt.domain_type == "qemu");
    CHECK(spec.hosts[0].jump == "auto");
    CHECK(spec.hosts[1].libvirt.pool == "fast");
    CHECK(spec.hosts[1].jump == "none");
    CHECK(spec.vms[0].host == "kvm1");
    CHECK(spec.vms[1].host == "kvm2");
    CHECK(spec.host_of(spec.vms[2]).name == "kvm2");
    // Code that knows one host sees the first.
    CHECK(spec.libvirt.uri == spec.hosts[0].libvirt.uri);
    // The IPs are assigned lab-wide: no two VMs share one, whichever host they are on.
    CHECK(spec.vms[0].ip == "10.66.77.10");
    CHECK(spec.vms[1].ip == "10.66.77.11");
    CHECK(spec.vms[2].ip == "10.66.77.12");
}

TEST_CASE("hosts: a host's view has its libvirt, its jump and only its VMs", "[config][hosts]") {
    const auto spec = load_ok(k_two_hosts);
    const auto kvm2 = spec.for_host(spec.hosts[1]);
    CHECK(kvm2.libvirt.uri == "qemu+ssh://ops@kvm2.example.org:2222/system");
    CHECK(kvm2.libvirt.pool == "fast");
    CHECK(kvm2.ssh.jump == "none");
    REQUIRE(kvm2.vms.size() == 2);
    CHECK(kvm2.vms[0].name == "db");
    CHECK(kvm2.vms[1].name == "web2");
    REQUIRE(kvm2.hosts.size() == 1);
    CHECK_FALSE(kvm2.several_hosts());
    CHECK(kvm2.project == spec.project);
    CHECK(kvm2.network.name == "multi-net"); // each host has its own network of that name
}

TEST_CASE("hosts: the VMs of a qemu+ssh host are reached through it, jump none and local hosts "
          "directly",
          "[config][hosts]") {
    const auto spec = load_ok(k_two_hosts);
    const auto j1 = spec.jump_for(spec.hosts[0]);
    REQUIRE(j1.has_value());
    CHECK(j1->user == "admin");
    CHECK(j1->host == "kvm1.example.org");
    CHECK(j1->port == 22);
    CHECK_FALSE(spec.jump_for(spec.hosts[1]).has_value());
    const auto local = load_ok(R"(version: 1
project: multi
hosts:
  here: {uri: "qemu:///system"}
  there: {uri: "qemu+libssh2://ops@kvm3.example.org:2200/system", jump: "admin@bastion:2022"}
vms: [{name: a}, {name: b, host: there}]
)");
    CHECK_FALSE(local.jump_for(local.hosts[0]).has_value());
    const auto j3 = local.jump_for(local.hosts[1]);
    REQUIRE(j3.has_value());
    CHECK(j3->user == "admin");
    CHECK(j3->host == "bastion");
    CHECK(j3->port == 2022);
}

TEST_CASE("without hosts: the lab has one host, 'default', made of the libvirt section",
          "[config][hosts]") {
    const auto spec = load_ok(R"(version: 1
project: one
libvirt:
  uri: qemu+ssh://admin@kvm1.example.org/system
vms: [{name: a}]
)");
    REQUIRE(spec.hosts.size() == 1);
    CHECK(spec.hosts[0].name == "default");
    CHECK(spec.hosts[0].libvirt.uri == "qemu+ssh://admin@kvm1.example.org/system");
    CHECK(spec.vms[0].host == "default");
    CHECK_FALSE(spec.several_hosts());
    REQUIRE(spec.jump_for(spec.hosts[0]).has_value());
    CHECK(spec.jump_for(spec.hosts[0])->host == spec.jump_host()->host);
}

TEST_CASE("hosts: mistakes are reported at their key with a hint", "[config][hosts]") {
    SECTION("a VM on a host that does not exist") {
        const auto e = errors(load_lab_text(R"(version: 1
project: p
hosts:
  kvm1: {uri: "qemu:///system"}
vms:
  - name: a
    host: kvm2
)",
                                            "lab.yaml"));
        CHECK(has(e, "lab.yaml:7:11: error: vms[0].host 'kvm2' is not one of the hosts"));
        CHECK(has(e, "did you mean 'kvm1'?"));
    }
    SECTION("a VM that names a host when lab.yaml has none") {
        const auto e = errors(load_lab_text("version: 1\nproject: p\nvms:\n  - {name: a, host: "
                                            "kvm1}\n",
                                            "lab.yaml"));
        CHECK(has(e, "vms[0].host 'kvm1': lab.yaml names no hosts"));
    }
    SECTION("a host without a uri, a bad name, an unknown key, a bad jump") {
        const auto e = errors(load_lab_text(R"(version: 1
project: p
hosts:
  kvm1: {pool: x}
  Bad_Name: {uri: "qemu:///system"}
  kvm3: {uri: "qemu:///session", jmp: none}
  kvm4: {uri: "test:///default", jump: "a b"}
vms: [{name: a}]
)",
                                            "lab.yaml"));
        CHECK(has(e, "lab.yaml:4:3: error: host 'kvm1' has no uri"));
        CHECK(has(e, "hosts.Bad_Name 'Bad_Name' is not a valid host name"));
        CHECK(has(e, "jmp"));
        CHECK(has(e, "hosts.kvm4.jump 'a b' is not auto, none or [USER@]HOST[:PORT]"));
    }
    SECTION("two hosts on one libvirt") {
        const auto e = errors(load_lab_text(R"(version: 1
project: p
hosts:
  a: {uri: "qemu:///system"}
  b: {uri: "qemu:///system"}
vms: [{name: x}]
)",
                                            "lab.yaml"));
        CHECK(has(e, "lab.yaml:5:12: error: hosts.b.uri 'qemu:///system' is also the uri of "
                     "host 'a'"));
    }
    SECTION("libvirt.uri next to hosts, in the file or the environment") {
        const std::string text = "version: 1\nproject: p\nlibvirt:\n  uri: qemu:///system\n"
                                 "hosts:\n  a: {uri: \"qemu:///session\"}\nvms: [{name: x}]\n";
        CHECK(has(errors(load_lab_text(text, "lab.yaml")),
                  "lab.yaml:4:8: error: libvirt.uri and hosts both say where the VMs run"));
        LoadOptions o;
        o.env = {{"LABCTL_LIBVIRT_URI", "test:///default"}};
        const std::string no_uri = "version: 1\nproject: p\nhosts:\n  a: {uri: "
                                   "\"qemu:///session\"}\nvms: [{name: x}]\n";
        CHECK(has(errors(load_lab_text(no_uri, "lab.yaml", o)),
                  "LABCTL_LIBVIRT_URI is set, but lab.yaml names its libvirt hosts under "
                  "'hosts'"));
    }
    SECTION("an empty hosts") {
        const auto e = errors(
            load_lab_text("version: 1\nproject: p\nhosts: {}\nvms: [{name: x}]\n", "lab.yaml"));
        CHECK(has(e, "hosts is empty"));
    }
}

TEST_CASE("hosts: LABCTL_POOL is the pool of every host that names none", "[config][hosts]") {
    LoadOptions o;
    o.env = {{"LABCTL_POOL", "envpool"}};
    const auto spec = load_ok(k_two_hosts, o);
    CHECK(spec.hosts[0].libvirt.pool == "envpool");
    CHECK(spec.hosts[1].libvirt.pool == "fast");
}

TEST_CASE("deploy.role routes the stack to every VM with that role, target_vm to one, and the "
          "first VM takes it when none has the role",
          "[config][hosts][deploy]") {
    const auto spec = load_ok(k_two_hosts);
    REQUIRE(spec.deploy_vms().size() == 2);
    CHECK(spec.deploy_vms()[0]->name == "web");
    CHECK(spec.deploy_vms()[1]->name == "web2");
    CHECK(spec.deploy.target_vm == "web");

    const auto one = load_ok(k_two_hosts + "deploy:\n  target_vm: web2\n");
    REQUIRE(one.deploy_vms().size() == 1);
    CHECK(one.deploy_vms()[0]->name == "web2");

    const auto db = load_ok(k_two_hosts + "deploy:\n  role: stack2\n");
    REQUIRE(db.deploy_vms().size() == 1);
    CHECK(db.deploy_vms()[0]->name == "web");
    const auto r = load_lab_text(k_two_hosts + "deploy:\n  role: stack2\n", "lab.yaml");
    CHECK(std::any_of(r.diagnostics.begin(), r.diagnostics.end(), [](const auto& d) {
        return d.severity == Severity::warning &&
               d.message == "no VM has the role 'stack2': the stack goes to the first VM, 'web'";
    }));
    CHECK(has(errors(load_lab_text(k_two_hosts + "deploy:\n  role: Stack!\n", "lab.yaml")),
              "deploy.role 'Stack!' is not a valid role"));
}
