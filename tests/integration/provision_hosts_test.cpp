// Several libvirt hosts in one lab (hosts: in lab.yaml), on two of libvirt's test:///<file>
// drivers: plan, provision, status and down across both, each VM on its own host, and a failure
// on one host rolling back what the run made on every host. The test driver keeps its state
// only while its connection is open, so each test holds a session per host.

#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <set>
#include <stdexcept>
#include <string>

#include <labctl/config/loader.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/process.hpp>
#include <labctl/provision/lab.hpp>
#include <labctl/provision/provision.hpp>

#include "support.hpp"

using namespace labctl;
using namespace labctl::provision;
using labctl::test::fixture;
using labctl::test::qcow2_header;
using labctl::test::read_file;
using labctl::test::TempDir;

namespace {

/// Two hosts, a and b, each a test:///<file> with only the pool "default"; web and api on a,
/// db on b.
class TwoHosts {
public:
    TwoHosts() {
        const auto node = read_file(fixture("libvirt/pool_only.xml"));
        m_dir.write("images/base.qcow2", qcow2_header(2ULL << 30));
        const auto key = m_dir.path() / ".labctl" / "id_ed25519";
        std::filesystem::create_directories(key.parent_path());
        REQUIRE(
            run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key.string()}).ok());
        m_file = m_dir
                     .write("lab.yaml",
                            fmt::format(R"(version: 1
project: duo
libvirt:
  domain_type: qemu
hosts:
  a:
    uri: test://{}
  b:
    uri: test://{}
network:
  cidr: 10.66.77.0/24
image:
  path: images/base.qcow2
vms:
  - {{name: web, memory: 1GiB, disk: 10GiB}}
  - {{name: db, memory: 1GiB, disk: 10GiB, host: b}}
  - {{name: api, memory: 1GiB, disk: 10GiB, host: a}}
)",
                                        m_dir.write("a.xml", node).string(),
                                        m_dir.write("b.xml", node).string()))
                     .string();
        config::LoadOptions opts;
        opts.path = m_file;
        const auto result = config::load_lab(opts);
        for (const auto& d : result.diagnostics)
            INFO(config::format(d));
        REQUIRE(result.ok());
        spec = *result.spec;
        m_a.emplace(LibvirtSession::open(spec.hosts[0].libvirt.uri));
        m_b.emplace(LibvirtSession::open(spec.hosts[1].libvirt.uri));
    }

    HostSessions sessions() { return {&*m_a, &*m_b}; }
    LibvirtSession& a() { return *m_a; }
    LibvirtSession& b() { return *m_b; }

    config::LabSpec spec;

private:
    TempDir m_dir;
    std::string m_file;
    std::optional<LibvirtSession> m_a, m_b;
};

std::set<std::string> names(const Inventory& inv) {
    std::set<std::string> out;
    for (const auto& n : inv.networks)
        out.insert("network:" + n.name);
    for (const auto& p : inv.pools)
        for (const auto& v : p.volumes)
            out.insert("volume:" + v.name);
    for (const auto& d : inv.domains)
        out.insert("domain:" + d.name);
    return out;
}

std::set<std::string> dhcp_names(const Inventory& inv, const std::string& network) {
    std::set<std::string> out;
    if (const auto* n = inv.find_network(network))
        for (const auto& h : n->dhcp_hosts)
            out.insert(h.name);
    return out;
}

} // namespace

TEST_CASE("hosts: plan, provision, status and down across two libvirt hosts, each VM on its own "
          "host with its own network entries",
          "[provision][hosts]") {
    TwoHosts lab;
    auto sessions = lab.sessions();

    const auto plans = plan_lab(lab.spec, sessions);
    REQUIRE(plans.size() == 2);
    CHECK(plans[0].host == "a");
    CHECK(plans[1].host == "b");
    auto planned_domains = [](const Plan& p) {
        std::set<std::string> out;
        for (const auto& item : p.items)
            if (item.kind == ResourceKind::domain)
                out.insert(item.name);
        return out;
    };
    CHECK(planned_domains(plans[0].plan) == std::set<std::string>{"duo-web", "duo-api"});
    CHECK(planned_domains(plans[1].plan) == std::set<std::string>{"duo-db"});

    ProvisionOptions opts;
    opts.parallel = 2;
    const auto r = provision_lab(lab.spec, sessions, opts);
    REQUIRE(r.vms.size() == 3);
    for (const auto& vm : r.vms)
        CHECK(vm.host == (vm.vm == "db" ? "b" : "a"));
    CHECK(std::all_of(r.changes.begin(), r.changes.end(),
                      [](const Change& c) { return c.host == "a" || c.host == "b"; }));

    const auto on_a = lab.a().inventory();
    const auto on_b = lab.b().inventory();
    CHECK(names(on_a).count("domain:duo-web") == 1);
    CHECK(names(on_a).count("domain:duo-api") == 1);
    CHECK(names(on_a).count("domain:duo-db") == 0);
    CHECK(names(on_b).count("domain:duo-db") == 1);
    CHECK(names(on_b).count("domain:duo-web") == 0);
    // Each host's network has the reservations of its own VMs only; the addresses are the lab's.
    CHECK(dhcp_names(on_a, "duo-net") == std::set<std::string>{"web", "api"});
    CHECK(dhcp_names(on_b, "duo-net") == std::set<std::string>{"db"});
    CHECK(on_b.find_network("duo-net")->dhcp_hosts[0].ip == "10.66.77.11");

    const auto st = status_lab(lab.spec, sessions);
    CHECK(st.unreachable.empty());
    REQUIRE(st.vms.size() == 3);
    for (const auto& v : st.vms) {
        CHECK(v.state == "running");
        CHECK(v.host == (v.vm == "db" ? "b" : "a"));
    }

    // Converged: nothing to do on either host.
    for (const auto& hp : plan_lab(lab.spec, sessions))
        CHECK_FALSE(hp.plan.has_changes());
    CHECK(provision_lab(lab.spec, sessions, opts).changes.empty());

    const auto gone = down_lab(lab.spec, {.purge = true}, sessions);
    CHECK(gone.failures.empty());
    CHECK(names(lab.a().inventory()).empty());
    CHECK(names(lab.b().inventory()).empty());
    CHECK(std::any_of(gone.changes.begin(), gone.changes.end(), [](const Change& c) {
        return c.host == "b" && c.kind == "domain" && c.name == "duo-db";
    }));
    CHECK(std::any_of(gone.changes.begin(), gone.changes.end(),
                      [](const Change& c) { return c.kind == "state"; }));
    CHECK(down_lab(lab.spec, {}, sessions).changes.empty());
}

TEST_CASE("hosts: a failure on one host rolls back what the run made on every host, and the "
          "error names the failed host",
          "[provision][hosts]") {
    TwoHosts lab;
    auto sessions = lab.sessions();
    const auto before_a = names(lab.a().inventory());
    const auto before_b = names(lab.b().inventory());
    ProvisionOptions opts;
    // db's domain (on b) is refused; a's VMs are made meanwhile.
    opts.before_step = [](std::string_view step) {
        if (step == "domain:db")
            throw Error(ExitCode::provision, "provision: defining domain 'duo-db' failed: refused");
    };
    std::string message, hint;
    int code = 0;
    try {
        provision_lab(lab.spec, sessions, opts);
    } catch (const Error& e) {
        code = to_int(e.code());
        message = e.what();
        hint = e.hint();
    }
    INFO(message << "\nhint: " << hint);
    CHECK(code == 9);
    CHECK(message.rfind("host 'b': provision: defining domain 'duo-db' failed", 0) == 0);
    CHECK(hint.find("the other hosts: rolled back on 'a'") != std::string::npos);
    CHECK(names(lab.a().inventory()) == before_a);
    CHECK(names(lab.b().inventory()) == before_b);
}

TEST_CASE("hosts: down cleans every host it reaches and reports the one it could not",
          "[provision][hosts]") {
    TwoHosts lab;
    auto sessions = lab.sessions();
    provision_lab(lab.spec, sessions);
    // b's libvirt is gone (its URI now names a file that does not exist): a is still cleaned.
    auto broken = lab.spec;
    broken.hosts[1].libvirt.uri = "test:///nonexistent/b.xml";
    const auto r = down_lab(broken, {}, {sessions[0], nullptr});
    REQUIRE(r.failures.size() == 1);
    CHECK(r.failures[0].host == "b");
    CHECK(r.failures[0].code == ExitCode::preflight);
    // Without --purge the base image stays on a.
    CHECK(names(lab.a().inventory()) == std::set<std::string>{"volume:base.qcow2"});
    CHECK(names(lab.b().inventory()).count("domain:duo-db") == 1);
    const auto st = status_lab(broken, {sessions[0], nullptr});
    REQUIRE(st.unreachable.size() == 1);
    CHECK(std::any_of(st.vms.begin(), st.vms.end(), [](const VmStatus& v) {
        return v.vm == "db" && v.host == "b" && v.state == "unknown";
    }));
}
