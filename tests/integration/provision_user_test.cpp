// network.mode user (SLIRP through <qemu:commandline>) and direct kernel boot against libvirt's
// test driver (no daemon, nothing real touched), plus the CLI's target resolution in user mode.
// Like provision_test.cpp every test holds one LibvirtSession across provision, plan and down:
// the test driver keeps a test:///<file> state only while a connection is open.

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <set>

#include <labctl/config/loader.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/process.hpp>
#include <labctl/provision/checksum.hpp>
#include <labctl/provision/host.hpp>
#include <labctl/provision/inventory.hpp>
#include <labctl/provision/naming.hpp>
#include <labctl/provision/plan.hpp>
#include <labctl/provision/provision.hpp>
#include <labctl/provision/seed.hpp>
#include <labctl/remote/known_hosts.hpp>

#include "../../src/cli/targets.hpp"
#include "../../src/provision/lv_objects.hpp"
#include "../../src/provision/xml.hpp"
#include "background.hpp"
#include "support.hpp"

using namespace labctl;
using namespace labctl::provision;
using labctl::test::fixture;
using labctl::test::qcow2_header;
using labctl::test::read_file;
using labctl::test::TempDir;

namespace {

struct LabOptions {
    int vms = 1;
    std::string image = "  path: images/base.qcow2\n";
    std::string forwards; ///< default: ssh and 3000 on UserLab::ssh_port and web_port
};

class UserLab {
public:
    explicit UserLab(const LabOptions& o = {})
        : ssh_port(test::free_port()), web_port(test::free_port()) {
        const std::string uri =
            "test://" +
            m_dir.write("node.xml", read_file(fixture("libvirt/pool_only.xml"))).string();
        m_dir.write("images/base.qcow2", qcow2_header(2ULL << 30));
        m_dir.write("images/vmlinuz", std::string(4096, 'k'));
        m_dir.write("images/initrd.img", std::string(8192, 'i'));
        const auto key = m_dir.path() / ".labctl" / "id_ed25519";
        std::filesystem::create_directories(key.parent_path());
        REQUIRE(
            run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key.string()}).ok());
        std::string yaml =
            fmt::format(R"(version: 1
project: lab
libvirt:
  uri: {}
  pool: default
  domain_type: qemu
network:
  mode: user
  forwards:
{}image:
{}vms:
)",
                        uri,
                        o.forwards.empty() ? fmt::format("    - {{guest: 22, host: {}}}\n    - "
                                                         "{{guest: 3000, host: {}}}\n",
                                                         ssh_port, web_port)
                                           : o.forwards,
                        o.image);
        for (int i = 1; i <= o.vms; ++i)
            yaml += fmt::format("  - name: lab{}\n    memory: 1GiB\n    disk: 20GiB\n", i);
        config::LoadOptions opts;
        opts.path = m_dir.write("lab.yaml", yaml).string();
        const auto result = config::load_lab(opts);
        for (const auto& d : result.diagnostics)
            INFO(config::format(d));
        REQUIRE(result.ok());
        spec = *result.spec;
    }

    LibvirtSession open() const { return LibvirtSession::open(spec.libvirt.uri); }
    const TempDir& dir() const { return m_dir; }

    // Ports that were free a moment ago: the forwards' host ports are checked before provision.
    int ssh_port;
    int web_port;
    config::LabSpec spec;

private:
    TempDir m_dir;
};

bool has_change(const std::vector<Change>& changes, const std::string& action,
                const std::string& kind, const std::string& name) {
    return std::any_of(changes.begin(), changes.end(), [&](const Change& c) {
        return c.action == action && c.kind == kind && c.name == name;
    });
}

std::string live_domain_xml(LibvirtSession& session, const std::string& name) {
    libvirt::DomainHandle d = session.impl().conn.find_domain(name);
    REQUIRE(d);
    return libvirt::take_string(virDomainGetXMLDesc(d.get(), 0));
}

/// The values of <qemu:arg> in the domain's <qemu:commandline>, in order.
std::vector<std::string> qemu_args(const xml::Element& domain) {
    std::vector<std::string> out;
    if (const auto* cl = domain.child("commandline"))
        for (const auto* a : cl->children_named("arg"))
            out.push_back(a->attribute("value"));
    return out;
}

} // namespace

TEST_CASE("user mode: plan, provision and down create and remove no network or DHCP host, the "
          "key is pinned as [127.0.0.1]:port",
          "[provision][user]") {
    UserLab lab;
    auto session = lab.open();
    const auto networks_before = session.inventory().networks.size();

    const Plan plan = plan_against(lab.spec, session.inventory(), {});
    CHECK(std::none_of(plan.items.begin(), plan.items.end(), [](const PlanItem& i) {
        return i.kind == ResourceKind::network || i.kind == ResourceKind::dhcp_host;
    }));

    const auto first = provision::provision(lab.spec, session);
    CHECK_FALSE(std::any_of(first.changes.begin(), first.changes.end(), [](const Change& c) {
        return c.kind == "network" || c.kind == "dhcp-host";
    }));
    CHECK(has_change(first.changes, "create", "domain", "lab-lab1"));
    REQUIRE(first.vms.size() == 1);
    CHECK(first.vms[0].ip == fmt::format("127.0.0.1:{}", lab.ssh_port));
    CHECK(first.vms[0].ip_source == "forward");
    CHECK(session.inventory().networks.size() == networks_before);

    // The test driver drops <qemu:commandline> on define (it knows no QEMU namespace): the SLIRP
    // arguments are checked on the XML before define in the next test, and on a real libvirtd by
    // the hidden "[real]" test. What it keeps: no <interface> at all.
    const auto stored = xml::parse(live_domain_xml(session, "lab-lab1"));
    CHECK(stored.find("devices/interface") == nullptr);

    // The host key is pinned for [127.0.0.1]:port, the form libssh2 and OpenSSH look up.
    const auto pinned =
        remote::find_known_hosts(lab.spec.ssh.known_hosts, "127.0.0.1", lab.ssh_port);
    REQUIRE(pinned.size() == 1);
    CHECK(read_file(lab.spec.ssh.known_hosts)
              .find(fmt::format("[127.0.0.1]:{} ssh-ed25519 ", lab.ssh_port)) != std::string::npos);

    const auto st = provision::status(lab.spec, session);
    REQUIRE(st.size() == 1);
    CHECK(st[0].address == fmt::format("127.0.0.1:{} (ssh)", lab.ssh_port));

    CHECK_FALSE(plan_against(lab.spec, session.inventory(), {}).has_changes());
    CHECK(provision::provision(lab.spec, session).changes.empty());

    const auto removed = provision::down(lab.spec, session, {.purge = true});
    CHECK(has_change(removed, "delete", "domain", "lab-lab1"));
    CHECK_FALSE(std::any_of(removed.begin(), removed.end(), [](const Change& c) {
        return c.kind == "network" || c.kind == "dhcp-host";
    }));
    CHECK(session.inventory().networks.size() == networks_before);
    CHECK(remote::find_known_hosts(lab.spec.ssh.known_hosts, "127.0.0.1", lab.ssh_port).empty());
}

TEST_CASE("user mode domain XML before define: qemu namespace, netdev with restrict=on and the "
          "forwards, virtio-net-pci with the VM's MAC at slot 0x10, no interface",
          "[provision][user]") {
    UserLab lab({.vms = 2,
                 .forwards = "    - {guest: 22, host: 40022}\n    - {guest: 3000, host: 43000}\n"});
    const auto& vm2 = lab.spec.vms[1];
    const std::string text = domain_xml(lab.spec, vm2, "qemu", "/pool/d.qcow2", "/pool/s.iso");
    const auto d = xml::parse(text);
    CHECK(d.attribute("xmlns:qemu") == "http://libvirt.org/schemas/domain/qemu/1.0");
    CHECK(d.find("devices/interface") == nullptr);
    REQUIRE(d.child("commandline") != nullptr);
    CHECK(d.child("commandline")->name == "qemu:commandline");
    // The second VM binds every host port + 1.
    CHECK(qemu_args(d) ==
          std::vector<std::string>{"-netdev",
                                   "user,id=lab0,restrict=on,hostfwd=tcp:127.0.0.1:40023-:22,"
                                   "hostfwd=tcp:127.0.0.1:43001-:3000",
                                   "-device",
                                   fmt::format("virtio-net-pci,netdev=lab0,mac={},bus=pci.0,"
                                               "addr=0x10",
                                               deterministic_mac("lab", "lab2"))});
    CHECK(d.find("os/kernel") == nullptr);
    CHECK(slirp_netdev(vm2).find("restrict=on") != std::string::npos);
}

TEST_CASE("user mode seed: static 10.0.2.15/24 via 10.0.2.2 without DNS, a labctl-built image "
          "installs no packages and still enables the guest agent",
          "[provision][user][seed]") {
    UserLab lab;
    const auto& vm = lab.spec.vms[0];
    const HostKey key{"-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----",
                      "ssh-ed25519 AAAA host"};
    auto files = render_seed(lab.spec, vm, "ssh-ed25519 AAAA user", key);
    CHECK(files.network_config.find("dhcp4: false") != std::string::npos);
    CHECK(files.network_config.find("- 10.0.2.15/24") != std::string::npos);
    CHECK(files.network_config.find("gateway4: 10.0.2.2") != std::string::npos);
    CHECK(files.network_config.find("nameservers") == std::string::npos);
    CHECK(files.network_config.find(deterministic_mac("lab", "lab1")) != std::string::npos);
    // An image from elsewhere still gets its packages from cloud-init.
    CHECK(files.user_data.find("\npackages:\n") != std::string::npos);

    config::LabSpec built = lab.spec;
    built.image.build = config::ImageBuildSpec{};
    files = render_seed(built, vm, "ssh-ed25519 AAAA user", key);
    CHECK(files.user_data.find("packages:") == std::string::npos);
    CHECK(files.user_data.find("qemu-guest-agent") != std::string::npos);
    CHECK(files.user_data.find("[systemctl, enable, --now, qemu-guest-agent]") !=
          std::string::npos);
}

TEST_CASE("direct kernel boot: kernel and initrd are uploaded as pool volumes and the domain "
          "boots them with the cmdline",
          "[provision][user][kernel]") {
    UserLab lab({.image = "  path: images/base.qcow2\n  kernel: images/vmlinuz\n  initrd: "
                          "images/initrd.img\n  cmdline: root=/dev/vda rw console=ttyS0 quiet\n"});
    auto session = lab.open();
    const Plan plan = plan_against(lab.spec, session.inventory(), {});
    const auto planned = [&](const std::string& name) {
        return std::any_of(plan.items.begin(), plan.items.end(), [&](const PlanItem& i) {
            return i.kind == ResourceKind::boot_volume && i.name == name &&
                   i.action == PlanAction::create;
        });
    };
    CHECK(planned("lab-kernel"));
    CHECK(planned("lab-initrd"));

    const auto first = provision::provision(lab.spec, session);
    CHECK(has_change(first.changes, "create", "volume", "lab-kernel"));
    CHECK(has_change(first.changes, "create", "volume", "lab-initrd"));
    const Inventory inv = session.inventory();
    const auto* pool = inv.find_pool("default");
    REQUIRE(pool != nullptr);
    const auto* kernel = pool->find_volume("lab-kernel");
    const auto* initrd = pool->find_volume("lab-initrd");
    REQUIRE(kernel != nullptr);
    REQUIRE(initrd != nullptr);
    CHECK(kernel->capacity == 4096);
    CHECK(initrd->capacity == 8192);

    const auto d = xml::parse(live_domain_xml(session, "lab-lab1"));
    CHECK(d.find("os/kernel")->text == kernel->path);
    CHECK(d.find("os/initrd")->text == initrd->path);
    CHECK(d.find("os/cmdline")->text == "root=/dev/vda rw console=ttyS0 quiet");

    // A kernel of another size is uploaded again.
    lab.dir().write("images/vmlinuz", std::string(5000, 'k'));
    const Plan again = plan_against(lab.spec, session.inventory(), {});
    CHECK(std::any_of(again.items.begin(), again.items.end(), [](const PlanItem& i) {
        return i.name == "lab-kernel" && i.action == PlanAction::replace;
    }));

    const auto removed = provision::down(lab.spec, session);
    CHECK(has_change(removed, "delete", "volume", "lab-kernel"));
    CHECK(has_change(removed, "delete", "volume", "lab-initrd"));
}

TEST_CASE("user mode: a forward's host port already in use on 127.0.0.1 is refused with exit 3 "
          "naming the port, before anything is created",
          "[provision][user]") {
    // Hold a port the kernel picks, as another service would.
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd, 1) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    const int port = ntohs(addr.sin_port);
    CHECK(loopback_port_busy(port).has_value());

    UserLab lab({.forwards = fmt::format("    - {{guest: 22, host: {}}}\n", port)});
    auto session = lab.open();
    const auto before = session.inventory().domains.size();
    try {
        provision::provision(lab.spec, session);
        FAIL("provision succeeded");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::preflight);
        CHECK_THAT(e.what(), Catch::Contains(fmt::format("host port {}", port)));
        CHECK_THAT(e.what(), Catch::Contains("already in use on 127.0.0.1"));
    }
    CHECK(session.inventory().domains.size() == before);
    ::close(fd);
    CHECK_FALSE(loopback_port_busy(port).has_value());
}

TEST_CASE("user mode targets: 127.0.0.1 and the forwarded ssh port, verify's endpoints are the "
          "forwarded service ports",
          "[provision][user][targets]") {
    UserLab lab({.vms = 2,
                 .forwards = "    - {guest: 22, host: 40022}\n    - {guest: 3000, host: 43000}\n"});
    const auto targets = cli::resolve_targets(lab.spec, "");
    REQUIRE(targets.size() == 2);
    CHECK(targets[0].endpoint.host == "127.0.0.1");
    CHECK(targets[0].endpoint.port == 40022);
    CHECK(targets[1].endpoint.host == "127.0.0.1");
    CHECK(targets[1].endpoint.port == 40023);
    CHECK(targets[0].endpoint.user == "labctl");

    // --host still wins.
    const auto other = cli::resolve_targets(lab.spec, "192.0.2.7:2200");
    CHECK(other.front().endpoint.host == "192.0.2.7");

    const auto endpoints = cli::vm_endpoints(lab.spec, "lab2");
    CHECK(endpoints.at("grafana") == "http://127.0.0.1:43001");
    // Not forwarded: a URL that never answers (with a warning), never 127.0.0.1:9090, where an
    // unrelated Prometheus on this host could answer for the lab.
    CHECK(endpoints.at("prometheus") == "http://127.0.0.1:0");

    // The ssh config the system ssh and rsync use points at the forward.
    const auto config = read_file(cli::write_ssh_config(lab.spec, targets));
    CHECK(config.find("Host lab1\n    HostName 127.0.0.1\n    Port 40022\n") != std::string::npos);
    CHECK(config.find("Host lab2\n    HostName 127.0.0.1\n    Port 40023\n") != std::string::npos);
}

// Hidden ("[.]"): needs a real libvirtd with the QEMU driver on qemu:///system. Run by hand:
//   provision_user_test "[real]"
// It only defines (never starts) the domain, with VIR_DOMAIN_DEFINE_VALIDATE so libvirt checks
// the XML against its schema and QEMU's capabilities, and undefines it again. No network object
// is created or started.
TEST_CASE("real libvirtd accepts the user-mode, direct-kernel-boot domain XML (define with "
          "VALIDATE on qemu:///system, then undefine)",
          "[.][real][provision][user]") {
    UserLab lab({.image = "  path: images/base.qcow2\n  kernel: images/vmlinuz\n  initrd: "
                          "images/initrd.img\n"});
    config::LabSpec spec = lab.spec;
    spec.project = fmt::format("labctlxmltest{}", ::getpid());
    spec.libvirt.uri = "qemu:///system";
    auto session = LibvirtSession::open("qemu:///system");
    REQUIRE(session.driver() == "QEMU");
    const auto& vm = spec.vms[0];
    const auto file = [&](const char* name) {
        return (lab.dir().path() / name).string();
    };
    const std::string text =
        domain_xml(spec, vm, "qemu", file("images/base.qcow2"), file("images/base.qcow2"),
                   {file("images/vmlinuz"), file("images/initrd.img")});
    UNSCOPED_INFO(text);
    const auto& conn = session.impl().conn;
    libvirt::DomainHandle d(
        virDomainDefineXMLFlags(conn.get(), text.c_str(), VIR_DOMAIN_DEFINE_VALIDATE));
    const auto error = libvirt::take_last_error();
    INFO(error.message);
    REQUIRE(d);
    const std::string stored = libvirt::take_string(virDomainGetXMLDesc(d.get(), 0));
    const bool undefined = virDomainUndefine(d.get()) == 0;
    INFO(stored);
    CHECK(undefined);
    const auto root = xml::parse(stored);
    CHECK(qemu_args(root).size() == 4);
    CHECK(root.find("os/kernel") != nullptr);
    CHECK(root.find("devices/interface") == nullptr);
}

// Hidden, by hand only: starts the user-mode domain on qemu:///system (TCG, no kernel, an empty
// disk: the guest sits in the firmware) to prove QEMU takes the SLIRP arguments (restrict=on,
// hostfwd on 127.0.0.1, the NIC at slot 0x10) and binds the forwards; then destroys and
// undefines it. The guest can reach nothing (restrict=on); no libvirt network is involved.
TEST_CASE("real libvirtd starts the user-mode domain and QEMU binds the forwards on 127.0.0.1",
          "[.][real][start][provision][user]") {
    UserLab lab;
    REQUIRE_FALSE(loopback_port_busy(lab.ssh_port));
    config::LabSpec spec = lab.spec;
    spec.project = fmt::format("labctlstarttest{}", ::getpid());
    spec.libvirt.uri = "qemu:///system";
    const auto disk = lab.dir().path() / "disk.qcow2";
    const auto seed = lab.dir().path() / "seed.raw";
    REQUIRE(run_process({"qemu-img", "create", "-q", "-f", "qcow2", disk.string(), "64M"}).ok());
    lab.dir().write("seed.raw", std::string(2048, '\0'));
    auto session = LibvirtSession::open("qemu:///system");
    const auto& conn = session.impl().conn;
    const std::string text = domain_xml(spec, spec.vms[0], "qemu", disk.string(), seed.string());
    libvirt::DomainHandle d(
        virDomainDefineXMLFlags(conn.get(), text.c_str(), VIR_DOMAIN_DEFINE_VALIDATE));
    REQUIRE(d);
    const bool started = virDomainCreate(d.get()) == 0;
    const std::string error = started ? std::string() : libvirt::take_last_error().message;
    const bool bound = started && loopback_port_busy(lab.ssh_port).has_value() &&
                       loopback_port_busy(lab.web_port).has_value();
    if (started)
        virDomainDestroy(d.get());
    virDomainUndefine(d.get());
    INFO(error);
    CHECK(started);
    CHECK(bound);
}

TEST_CASE("down --purge of a labctl-built image also removes the unused base volumes of earlier "
          "builds",
          "[provision][user][purge]") {
    UserLab lab({.image = "  path: images/base.qcow2\n  kernel: images/vmlinuz\n  initrd: "
                          "images/initrd.img\n"});
    auto session = lab.open();
    // Stands for what the CLI fills in from `labctl image build` (src/cli/built_image.cpp).
    auto built_from = [&](const std::string& content) {
        const auto path = lab.dir().write("images/base.qcow2", content);
        config::LabSpec s = lab.spec;
        s.image.build = config::ImageBuildSpec{};
        s.image.sha256 = sha256_file_hex(path.string());
        return s;
    };
    const auto first = built_from(qcow2_header(2ULL << 30));
    const auto first_base = base_volume_name(first.image);
    REQUIRE(first_base.rfind("labctl-bookworm-", 0) == 0);
    provision::provision(first, session);
    provision::down(first, session, {}); // without --purge the base volume stays
    REQUIRE(session.inventory().find_pool("default")->find_volume(first_base) != nullptr);

    // A rebuilt image (new inputs): a new base volume next to the old one.
    const auto second = built_from(qcow2_header(3ULL << 30));
    const auto second_base = base_volume_name(second.image);
    REQUIRE(second_base != first_base);
    provision::provision(second, session);
    const auto removed = provision::down(second, session, {.purge = true});
    CHECK(has_change(removed, "delete", "volume", second_base));
    CHECK(has_change(removed, "delete", "volume", first_base));
    const auto left = session.inventory();
    CHECK(left.domains.empty());
    CHECK(left.find_pool("default")->find_volume(first_base) == nullptr);
}
