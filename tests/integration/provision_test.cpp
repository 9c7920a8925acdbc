// provision, status, plan and down against libvirt's test driver (no daemon, no guest, nothing
// real touched). The test driver keeps a test:///<file> state only while a connection is open, so
// every test holds one LibvirtSession across provision, plan, status and down. The test driver
// runs no guests: the waits are covered by provision_wait_test.cpp, and volume uploads are not
// supported by it (provision says so).

#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <csignal>
#include <fstream>
#include <set>

#include <labctl/config/loader.hpp>
#include <labctl/core/encoding.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/process.hpp>
#include <labctl/core/signals.hpp>
#include <labctl/image/download.hpp>
#include <labctl/provision/host.hpp>
#include <labctl/provision/inventory.hpp>
#include <labctl/provision/naming.hpp>
#include <labctl/provision/plan.hpp>
#include <labctl/provision/provision.hpp>
#include <labctl/remote/known_hosts.hpp>

#include "../../src/provision/xml.hpp"
#include "support.hpp"

using namespace labctl;
using namespace labctl::provision;
using labctl::test::fixture;
using labctl::test::qcow2_header;
using labctl::test::read_file;
using labctl::test::TempDir;

namespace {

struct LabOptions {
    std::string state = "pool_only.xml"; ///< fixture under tests/fixtures/libvirt, "" = default
    int vms = 1;
    std::string disk = "20GiB";
    std::string pool = "default";
    std::string extra_vm_settings;
    std::string image = "  path: images/base.qcow2\n"; ///< the image section's lines
};

class Lab {
public:
    explicit Lab(const LabOptions& o = {}) {
        const std::string uri =
            o.state.empty()
                ? std::string("test:///default")
                : "test://" +
                      m_dir.write("node.xml", read_file(fixture("libvirt/" + o.state))).string();
        m_dir.write("images/base.qcow2", qcow2_header(2ULL << 30));
        const auto key = m_dir.path() / ".labctl" / "id_ed25519";
        std::filesystem::create_directories(key.parent_path());
        REQUIRE(
            run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key.string()}).ok());
        std::string yaml = fmt::format(R"(version: 1
project: lab
libvirt:
  uri: {}
  pool: {}
  domain_type: qemu
network:
  name: lab-net
  cidr: 10.66.77.0/24
image:
{}vms:
)",
                                       uri, o.pool, o.image);
        for (int i = 1; i <= o.vms; ++i)
            yaml += fmt::format("  - name: lab{}\n    memory: 1GiB\n    disk: {}\n{}", i, o.disk,
                                o.extra_vm_settings);
        m_file = m_dir.write("lab.yaml", yaml).string();
        reload();
    }

    void reload() {
        config::LoadOptions opts;
        opts.path = m_file;
        const auto result = config::load_lab(opts);
        for (const auto& d : result.diagnostics)
            INFO(config::format(d));
        REQUIRE(result.ok());
        spec = *result.spec;
    }

    LibvirtSession open() const { return LibvirtSession::open(spec.libvirt.uri); }
    const TempDir& dir() const { return m_dir; }

    config::LabSpec spec;

private:
    TempDir m_dir;
    std::string m_file;
};

Plan plan_on(const config::LabSpec& spec, const LibvirtSession& s) {
    return plan_against(spec, s.inventory(), {});
}

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

bool has_change(const std::vector<Change>& changes, const std::string& action,
                const std::string& kind, const std::string& name) {
    return std::any_of(changes.begin(), changes.end(), [&](const Change& c) {
        return c.action == action && c.kind == kind && c.name == name;
    });
}

int code_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        UNSCOPED_INFO(e.what());
        return to_int(e.code());
    }
    return 0;
}

} // namespace

TEST_CASE("provision then status, plan (no changes), a second provision (no changes), down and "
          "a second down (no-op)",
          "[provision]") {
    Lab lab;
    auto session = lab.open();

    const auto first = provision::provision(lab.spec, session);
    CHECK(has_change(first.changes, "create", "network", "lab-net"));
    CHECK(has_change(first.changes, "create", "dhcp-host", "lab1"));
    CHECK(has_change(first.changes, "create", "volume", "base.qcow2"));
    CHECK(has_change(first.changes, "create", "volume", "lab-lab1.qcow2"));
    CHECK(has_change(first.changes, "create", "volume", "lab-lab1-seed.iso"));
    CHECK(has_change(first.changes, "create", "domain", "lab-lab1"));
    CHECK(has_change(first.changes, "start", "domain", "lab-lab1"));
    REQUIRE(first.vms.size() == 1);
    CHECK(first.vms[0].ip == "10.66.77.10");
    CHECK_FALSE(first.vms[0].waited);
    CHECK(std::find(first.notes.begin(), first.notes.end(),
                    "the test driver runs no guests: the ip, ssh and cloud-init waits are "
                    "skipped") != first.notes.end());

    // What libvirt now holds carries labctl's metadata and the DHCP reservation.
    const Inventory inv = session.inventory();
    const auto* net = inv.find_network("lab-net");
    REQUIRE(net != nullptr);
    CHECK(net->active);
    REQUIRE(net->labctl);
    CHECK(net->labctl->project == "lab");
    REQUIRE(net->dhcp_hosts.size() == 1);
    CHECK(net->dhcp_hosts[0].mac == deterministic_mac("lab", "lab1"));
    CHECK(net->dhcp_hosts[0].ip == "10.66.77.10");
    CHECK(net->dhcp_hosts[0].name == "lab1");
    REQUIRE(net->dns_hosts.size() == 1);
    CHECK(net->dns_hosts[0].ip == "10.66.77.10");
    CHECK(net->dns_hosts[0].hostnames == std::vector<std::string>{"lab1"});
    const auto* dom = inv.find_domain("lab-lab1");
    REQUIRE(dom != nullptr);
    CHECK(dom->active);
    REQUIRE(dom->labctl);
    CHECK(dom->labctl->project == "lab");
    CHECK(dom->labctl->vm == "lab1");
    CHECK(dom->labctl->spec_hash == vm_spec_hash(lab.spec, lab.spec.vms[0]));

    // The host key labctl generated is pinned for the VM's address.
    const auto pinned = remote::find_known_hosts(lab.spec.ssh.known_hosts, "10.66.77.10", 22);
    REQUIRE(pinned.size() == 1);
    CHECK(pinned[0].key_type == "ssh-ed25519");
    const std::string pub = read_file(std::filesystem::path(lab.spec.state_dir()) / "hostkeys" /
                                      "lab1" / "ssh_host_ed25519_key.pub");
    CHECK(pub.find(pinned[0].key_base64) != std::string::npos);

    const auto st = provision::status(lab.spec, session);
    REQUIRE(st.size() == 1);
    CHECK(st[0].vm == "lab1");
    CHECK(st[0].state == "running");
    CHECK(st[0].address == "10.66.77.10");
    CHECK(st[0].spec == "current");

    const Plan plan = plan_on(lab.spec, session);
    CHECK_FALSE(plan.has_changes());
    CHECK(plan.summary() ==
          "Plan: 0 to create, 7 to keep, 0 to update, 0 to replace, 0 to delete.");

    const auto second = provision::provision(lab.spec, session);
    CHECK(second.changes.empty());

    const auto removed = provision::down(lab.spec, session);
    CHECK(has_change(removed, "delete", "domain", "lab-lab1"));
    CHECK(has_change(removed, "delete", "volume", "lab-lab1.qcow2"));
    CHECK(has_change(removed, "delete", "volume", "lab-lab1-seed.iso"));
    CHECK(has_change(removed, "delete", "dhcp-host", "lab1"));
    CHECK(has_change(removed, "delete", "network", "lab-net"));
    CHECK_FALSE(has_change(removed, "delete", "volume", "base.qcow2")); // only with --purge
    CHECK(names(session.inventory()) == std::set<std::string>{"volume:base.qcow2"});

    CHECK(provision::down(lab.spec, session).empty());

    const auto purged = provision::down(lab.spec, session, {.purge = true});
    CHECK(has_change(purged, "delete", "volume", "base.qcow2"));
    CHECK(names(session.inventory()).empty());
    CHECK(remote::find_known_hosts(lab.spec.ssh.known_hosts, "10.66.77.10", 22).empty());
}

TEST_CASE("network, overlay, seed and domain XML parse back field by field", "[provision]") {
    Lab lab;
    const auto& vm = lab.spec.vms[0];

    const NetworkFacts net = parse_network_xml(network_xml(lab.spec));
    CHECK(net.name == "lab-net");
    CHECK(net.forward_mode == "nat");
    REQUIRE(net.subnets.size() == 1);
    CHECK(net.subnets[0].to_string() == "10.66.77.0/24");
    REQUIRE(net.labctl);
    CHECK(net.labctl->project == "lab");
    const auto net_root = xml::parse(network_xml(lab.spec));
    CHECK(net_root.find("ip")->attribute("address") == "10.66.77.1");
    CHECK(net_root.find("ip/dhcp/range")->attribute("start") == "10.66.77.128");
    CHECK(net_root.find("ip/dhcp/range")->attribute("end") == "10.66.77.254");
    CHECK(net_root.child("domain")->attribute("name") == "lab.local");

    const auto overlay = xml::parse(overlay_volume_xml(lab.spec, vm, "/pool/base.qcow2"));
    CHECK(overlay.child_text("name") == "lab-lab1.qcow2");
    CHECK(overlay.child_text("capacity") == std::to_string(20ULL << 30));
    CHECK(overlay.child("capacity")->attribute("unit") == "bytes");
    CHECK(overlay.find("target/format")->attribute("type") == "qcow2");
    // qcow2 v3: libvirt makes v2 (compat 0.10) unless told, and QEMU cannot grow a v2 image that
    // holds snapshots.
    CHECK(overlay.find("target/compat")->text == "1.1");
    CHECK(overlay.find("backingStore/path")->text == "/pool/base.qcow2");
    CHECK(overlay.find("backingStore/format")->attribute("type") == "qcow2");

    const auto seed = xml::parse(seed_volume_xml(lab.spec, vm, 374784));
    CHECK(seed.child_text("name") == "lab-lab1-seed.iso");
    CHECK(seed.child_text("capacity") == "374784");
    CHECK(seed.find("target/format")->attribute("type") == "raw");

    const std::string dxml = domain_xml(lab.spec, vm, "qemu", "/pool/d.qcow2", "/pool/s.iso");
    const auto d = xml::parse(dxml);
    CHECK(d.attribute("type") == "qemu");
    CHECK(d.child_text("name") == "lab-lab1");
    CHECK(d.child_text("memory") == std::to_string(1ULL << 30));
    CHECK(d.child("memory")->attribute("unit") == "bytes");
    CHECK(d.child_text("vcpu") == "2");
    const auto disks = d.child("devices")->children_named("disk");
    REQUIRE(disks.size() == 2);
    CHECK(disks[0]->find("source")->attribute("file") == "/pool/d.qcow2");
    CHECK(disks[0]->find("target")->attribute("bus") == "virtio");
    CHECK(disks[0]->find("driver")->attribute("type") == "qcow2");
    CHECK(disks[1]->find("source")->attribute("file") == "/pool/s.iso");
    CHECK(disks[1]->find("target")->attribute("bus") == "virtio"); // the NoCloud seed
    CHECK(disks[1]->find("readonly") != nullptr);
    const auto* nic = d.find("devices/interface");
    CHECK(nic->find("mac")->attribute("address") == deterministic_mac("lab", "lab1"));
    CHECK(nic->find("source")->attribute("network") == "lab-net");
    CHECK(nic->find("model")->attribute("type") == "virtio");
    CHECK(d.find("devices/serial") != nullptr);
    CHECK(d.find("devices/console/target")->attribute("type") == "serial");
    CHECK(d.find("devices/channel/target")->attribute("name") == "org.qemu.guest_agent.0");
    CHECK(d.find("devices/rng")->attribute("model") == "virtio");
    const auto meta = parse_labctl_metadata(dxml);
    REQUIRE(meta);
    CHECK(meta->project == "lab");
    CHECK(meta->vm == "lab1");
    CHECK(meta->spec_hash == vm_spec_hash(lab.spec, vm));
    CHECK(d.find("metadata/lab/version") != nullptr);
}

TEST_CASE("provision refuses a network range that collides with another libvirt network and "
          "creates nothing",
          "[provision]") {
    Lab lab({.state = "cidr_collision.xml"});
    auto session = lab.open();
    const auto before = names(session.inventory());
    try {
        provision::provision(lab.spec, session);
        FAIL("provision succeeded");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::preflight);
        CHECK(std::string(e.what()).find("libvirt network 'other' (10.66.0.0/16)") !=
              std::string::npos);
    }
    CHECK(names(session.inventory()) == before);
}

TEST_CASE("provision refuses a domain name taken by a foreign domain, and down never touches it",
          "[provision]") {
    Lab lab({.state = "foreign_domain.xml"});
    auto session = lab.open();
    CHECK(code_of([&] { provision::provision(lab.spec, session); }) == 3);
    CHECK(provision::down(lab.spec, session, {.purge = true}).empty());
    CHECK(session.inventory().find_domain("lab-lab1") != nullptr);
}

TEST_CASE("a failure injected mid-run removes everything that run created", "[provision]") {
    Lab lab({.vms = 3});
    auto session = lab.open();
    const auto before = names(session.inventory());
    ProvisionOptions opts;
    opts.before_step = [](std::string_view step) {
        if (step == "domain:lab3")
            throw Error(ExitCode::internal, "injected failure");
    };
    CHECK(code_of([&] { provision::provision(lab.spec, session, opts); }) == 1);
    CHECK(names(session.inventory()) == before);
    const auto* net = session.inventory().find_network("lab-net");
    CHECK(net == nullptr);
}

TEST_CASE("with keep-on-failure a failed run leaves what it created, and the next run "
          "completes it",
          "[provision]") {
    Lab lab({.vms = 2});
    auto session = lab.open();
    ProvisionOptions opts;
    opts.keep_on_failure = true;
    opts.before_step = [](std::string_view step) {
        if (step == "seed:lab2")
            throw Error(ExitCode::internal, "injected failure");
    };
    CHECK(code_of([&] { provision::provision(lab.spec, session, opts); }) == 1);
    CHECK(session.inventory().find_domain("lab-lab1") != nullptr);
    CHECK(session.inventory().find_domain("lab-lab2") == nullptr);
    const auto rest = provision::provision(lab.spec, session);
    CHECK(has_change(rest.changes, "create", "domain", "lab-lab2"));
    CHECK_FALSE(has_change(rest.changes, "create", "domain", "lab-lab1"));
    CHECK_FALSE(plan_on(lab.spec, session).has_changes());
}

TEST_CASE("Ctrl-C during provision cleans up and ends with exit 130", "[provision]") {
    Lab lab({.vms = 2});
    auto session = lab.open();
    const auto before = names(session.inventory());
    signals::reset();
    signals::install();
    ProvisionOptions opts;
    opts.before_step = [](std::string_view step) {
        if (step == "overlay:lab2")
            std::raise(SIGINT);
    };
    CHECK(code_of([&] { provision::provision(lab.spec, session, opts); }) == 130);
    signals::reset();
    CHECK(names(session.inventory()) == before);
}

TEST_CASE("eight VMs provisioned in parallel, then removed", "[provision]") {
    Lab lab({.vms = 8, .disk = "10GiB"}); // the test driver's pools hold 100 GiB
    auto session = lab.open();
    ProvisionOptions opts;
    opts.parallel = 8;
    const auto r = provision::provision(lab.spec, session, opts);
    REQUIRE(r.vms.size() == 8);
    const Inventory inv = session.inventory();
    std::set<std::string> macs, ips;
    for (int i = 1; i <= 8; ++i) {
        const auto* d = inv.find_domain(fmt::format("lab-lab{}", i));
        REQUIRE(d != nullptr);
        CHECK(d->active);
    }
    for (const auto& h : inv.find_network("lab-net")->dhcp_hosts) {
        macs.insert(h.mac);
        ips.insert(h.ip);
    }
    CHECK(macs.size() == 8);
    CHECK(ips.size() == 8);
    CHECK(remote::find_known_hosts(lab.spec.ssh.known_hosts, "10.66.77.17", 22).size() == 1);
    CHECK_FALSE(plan_on(lab.spec, session).has_changes());
    provision::down(lab.spec, session);
    CHECK(names(session.inventory()) == std::set<std::string>{"volume:base.qcow2"});
}

TEST_CASE("a VM whose ip changed has its host key pinned at the new address only, and down "
          "--purge removes every pin of that key",
          "[provision]") {
    Lab lab;
    auto session = lab.open();
    provision::provision(lab.spec, session);
    const auto& kh = lab.spec.ssh.known_hosts;
    REQUIRE(remote::find_known_hosts(kh, "10.66.77.10", 22).size() == 1);
    lab.spec.vms[0].ip = "10.66.77.20";
    provision::provision(lab.spec, session);
    CHECK(remote::find_known_hosts(kh, "10.66.77.20", 22).size() == 1);
    // Whatever takes .10 next must not pass as lab1.
    CHECK(remote::find_known_hosts(kh, "10.66.77.10", 22).empty());

    // A pin left at an old address by an earlier labctl goes with --purge too.
    const std::string pub = read_file(std::filesystem::path(lab.spec.state_dir()) / "hostkeys" /
                                      "lab1" / "ssh_host_ed25519_key.pub");
    remote::pin_host_keys(kh, "10.66.77.30", 22, {pub});
    provision::down(lab.spec, session, {.purge = true});
    CHECK(remote::find_known_hosts(kh, "10.66.77.20", 22).empty());
    CHECK(remote::find_known_hosts(kh, "10.66.77.30", 22).empty());
}

TEST_CASE("a changed VM is replaced and a VM removed from lab.yaml is deleted", "[provision]") {
    Lab lab({.vms = 2});
    auto session = lab.open();
    provision::provision(lab.spec, session);
    lab.spec.ssh.port = 2222; // not a size: the VM is replaced (new cpus would update it)
    lab.spec.vms.pop_back();
    const auto r = provision::provision(lab.spec, session);
    CHECK(has_change(r.changes, "delete", "domain", "lab-lab2"));
    CHECK(has_change(r.changes, "delete", "dhcp-host", "lab2"));
    CHECK(has_change(r.changes, "delete", "domain", "lab-lab1")); // replaced
    CHECK(has_change(r.changes, "create", "domain", "lab-lab1"));
    CHECK(has_change(r.changes, "create", "volume", "lab-lab1.qcow2")); // as the plan said
    const auto inv = session.inventory();
    CHECK(inv.find_domain("lab-lab2") == nullptr);
    CHECK(inv.find_domain("lab-lab1")->labctl->spec_hash ==
          vm_spec_hash(lab.spec, lab.spec.vms[0]));
    CHECK(inv.find_network("lab-net")->dhcp_hosts.size() == 1);
    CHECK_FALSE(plan_on(lab.spec, session).has_changes());
}

TEST_CASE("a stale DHCP reservation for the VM's MAC is replaced", "[provision]") {
    Lab lab;
    auto session = lab.open();
    provision::provision(lab.spec, session);
    lab.spec.vms[0].ip = "10.66.77.20";
    const auto r = provision::provision(lab.spec, session);
    CHECK(has_change(r.changes, "replace", "dhcp-host", "lab1"));
    const auto hosts = session.inventory().find_network("lab-net")->dhcp_hosts;
    REQUIRE(hosts.size() == 1);
    CHECK(hosts[0].ip == "10.66.77.20");
    CHECK(hosts[0].mac == deterministic_mac("lab", "lab1"));
    const auto dns = session.inventory().find_network("lab-net")->dns_hosts;
    REQUIRE(dns.size() == 1);
    CHECK(dns[0].ip == "10.66.77.20");
}

TEST_CASE("down leaves another project's domain and a network labctl did not create",
          "[provision]") {
    Lab lab({.state = "foreign_network.xml"});
    auto session = lab.open();
    provision::provision(lab.spec, session);
    const auto removed = provision::down(lab.spec, session);
    CHECK(has_change(removed, "delete", "domain", "lab-lab1"));
    CHECK_FALSE(has_change(removed, "delete", "network", "lab-net"));
    const auto* net = session.inventory().find_network("lab-net");
    REQUIRE(net != nullptr);
    CHECK(net->dhcp_hosts.empty());
    CHECK(net->dns_hosts.empty());
}

TEST_CASE("bad configs: disk smaller than the image (2), unknown pool (3), unreachable URI (3)",
          "[provision]") {
    {
        Lab lab({.disk = "1GiB"});
        auto session = lab.open();
        CHECK(code_of([&] { provision::provision(lab.spec, session); }) == 2);
        CHECK(session.inventory().find_network("lab-net") == nullptr);
    }
    {
        Lab lab({.pool = "nosuchpool"});
        auto session = lab.open();
        CHECK(code_of([&] { provision::provision(lab.spec, session); }) == 3);
    }
    {
        Lab lab;
        lab.spec.libvirt.uri = "test:///nonexistent/node.xml";
        CHECK(code_of([&] { provision::provision(lab.spec); }) == 3);
    }
}

TEST_CASE("down leaves volumes named like the lab's that labctl did not create", "[provision]") {
    Lab lab({.state = "foreign_volume.xml"});
    auto session = lab.open();
    const auto before = names(session.inventory());
    REQUIRE(before.count("volume:lab-lab1.qcow2") == 1);
    CHECK(provision::down(lab.spec, session, {.purge = true}).empty());
    CHECK(names(session.inventory()) == before);
}

TEST_CASE("image.url is downloaded, verified and uploaded only when the base volume must be "
          "created, and the volume keeps the URL's name",
          "[provision]") {
    TempDir mirror;
    const auto file = mirror.write("debian-12-genericcloud-amd64.qcow2", qcow2_header(2ULL << 30));
    TempDir cache;
    LabOptions o;
    o.image =
        fmt::format("  url: file://{}\n  sha256: {}\n", file.string(), sha256_hex(read_file(file)));
    Lab lab(o);
    auto session = lab.open();
    // plan names the volume after the URL before anything is downloaded.
    const auto before = plan_on(lab.spec, session);
    CHECK(std::any_of(before.items.begin(), before.items.end(), [](const PlanItem& i) {
        return i.name == "debian-12-genericcloud-amd64.qcow2" && i.action == PlanAction::create;
    }));
    int fetched = 0;
    ProvisionOptions p;
    p.fetch_image = [&] {
        ++fetched;
        image::DownloadOptions d;
        d.url = lab.spec.image.url;
        d.sha256 = lab.spec.image.sha256;
        d.cache_dir = cache.path();
        return image::download(d).path.string();
    };
    const auto first = provision::provision(lab.spec, session, p);
    CHECK(fetched == 1);
    CHECK(has_change(first.changes, "create", "volume", "debian-12-genericcloud-amd64.qcow2"));
    CHECK(std::filesystem::exists(cache.path() / "downloads" /
                                  ("sha256-" + lab.spec.image.sha256 + ".qcow2")));
    // The base volume is there: a second run needs no download and changes nothing.
    const auto second = provision::provision(lab.spec, session, p);
    CHECK(fetched == 1);
    CHECK(second.changes.empty());
    // Without a fetcher (a command that does not download), a missing volume is a usage error.
    DownOptions purge;
    purge.purge = true;
    provision::down(lab.spec, session, purge);
    CHECK(code_of([&] { provision::provision(lab.spec, session); }) == 2);
}

TEST_CASE("a smaller disk in lab.yaml is refused with exit 2, and the VM and its disk stay as "
          "they are",
          "[provision]") {
    Lab lab;
    auto session = lab.open();
    provision::provision(lab.spec, session);
    const auto before = names(session.inventory());
    auto smaller = lab.spec;
    smaller.vms[0].disk_bytes = 10ULL << 30;
    CHECK(code_of([&] { provision::provision(smaller, session); }) == 2);
    CHECK(names(session.inventory()) == before);
    const auto after = session.inventory();
    const auto* pool = after.find_pool("default");
    REQUIRE(pool != nullptr);
    const auto* disk = pool->find_volume("lab-lab1.qcow2");
    REQUIRE(disk != nullptr);
    CHECK(disk->capacity == 20ULL << 30);
}
