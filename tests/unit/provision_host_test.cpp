// Host facts and libvirt XML parsing without a host or libvirt: the routing table, network and
// pool XML, URIs, free space, the KVM probe and loopback ports.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <functional>

#include <labctl/core/error.hpp>
#include <labctl/provision/host.hpp>
#include <labctl/provision/inventory.hpp>

#include "support.hpp"

using namespace labctl;
using namespace labctl::provision;

TEST_CASE("host routes are parsed from /proc/net/route text", "[provision][host]") {
    const std::string text =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        "virbr1\t004D420A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        "down0\t0000A8C0\t00000000\t0000\t0\t0\t0\t0000FFFF\t0\t0\t0\n"
        "garbage line\n";
    const auto routes = parse_host_routes(text);
    REQUIRE(routes.size() == 3);
    CHECK(routes[0].interface == "eth0");
    CHECK(routes[0].destination.to_string() == "0.0.0.0/0");
    CHECK(routes[0].gateway == "192.0.2.1");
    CHECK(routes[1].destination.to_string() == "192.0.2.0/24");
    CHECK(routes[1].gateway.empty());
    CHECK(routes[2].interface == "virbr1");
    CHECK(routes[2].destination.to_string() == "10.66.77.0/24");
}

TEST_CASE("an unreadable route table gives no routes", "[provision][host]") {
    CHECK(read_host_routes("/nonexistent/route").empty());
}

TEST_CASE("network XML gives name, bridge, ranges, DHCP hosts and labctl metadata",
          "[provision][host]") {
    const auto n = parse_network_xml(R"(<network>
  <name>lab-net</name>
  <uuid>d372919b-cacc-4033-a1c8-043c9ffc3b9b</uuid>
  <metadata>
    <labctl:lab xmlns:labctl="https://labctl.dev/xmlns/labctl/1">
      <labctl:project>lab</labctl:project>
    </labctl:lab>
  </metadata>
  <forward mode='nat'/>
  <bridge name='virbr7' stp='on' delay='0'/>
  <ip address='10.66.77.1' netmask='255.255.255.0'>
    <dhcp>
      <range start='10.66.77.100' end='10.66.77.254'/>
      <host mac='52:54:00:AB:CD:EF' name='lab1' ip='10.66.77.10'/>
    </dhcp>
  </ip>
  <ip family='ipv6' address='fd00::1' prefix='64'/>
  <ip address='172.20.0.1' prefix='16'/>
</network>)");
    CHECK(n.name == "lab-net");
    CHECK(n.forward_mode == "nat");
    CHECK(n.bridge == "virbr7");
    REQUIRE(n.subnets.size() == 2);
    CHECK(n.subnets_text() == "10.66.77.0/24, 172.20.0.0/16");
    REQUIRE(n.dhcp_hosts.size() == 1);
    CHECK(n.dhcp_hosts[0].mac == "52:54:00:ab:cd:ef");
    CHECK(n.dhcp_hosts[0].name == "lab1");
    CHECK(n.dhcp_hosts[0].ip == "10.66.77.10");
    REQUIRE(n.labctl);
    CHECK(n.labctl->project == "lab");
}

TEST_CASE("an isolated network without metadata is not labctl's", "[provision][host]") {
    const auto n = parse_network_xml("<network><name>iso</name><ip address='10.0.0.1' "
                                     "netmask='255.0.0.0'/></network>");
    CHECK(n.forward_mode.empty());
    CHECK(n.subnets_text() == "10.0.0.0/8");
    CHECK_FALSE(n.labctl);
}

TEST_CASE("network XML entities, comments and CDATA are read as libvirt means them",
          "[provision][host]") {
    const auto n = parse_network_xml(
        "<?xml version='1.0'?>\n<!-- generated -->\n<network><name>a&amp;b&#x2d;&#99;</name>"
        "<!-- <bridge name='no'/> --><bridge name=\"br&quot;0\"/><ip address='10.9.0.1' "
        "prefix='16'><dhcp><host mac='52:54:00:00:00:01' name='x&lt;y' ip='10.9.0.5'/></dhcp>"
        "</ip><description><![CDATA[<not markup>]]></description></network>");
    CHECK(n.name == "a&b-c");
    CHECK(n.bridge == "br\"0");
    CHECK(n.subnets_text() == "10.9.0.0/16");
    REQUIRE(n.dhcp_hosts.size() == 1);
    CHECK(n.dhcp_hosts[0].name == "x<y");
}

TEST_CASE("malformed XML from libvirt is an internal error", "[provision][host]") {
    CHECK_THROWS_AS(parse_network_xml("<network><name>x</network>"), labctl::Error);
    CHECK_THROWS_AS(parse_network_xml("<network><name>&bogus;</name></network>"), labctl::Error);
    CHECK_THROWS_AS(parse_network_xml(""), labctl::Error);
}

TEST_CASE("pool XML gives type, path and sizes in bytes", "[provision][host]") {
    const auto p = parse_pool_xml(R"(<pool type='dir'>
  <name>default</name>
  <capacity unit='bytes'>107374182400</capacity>
  <allocation unit='bytes'>0</allocation>
  <available unit='GiB'>90</available>
  <target><path>/var/lib/libvirt/images</path></target>
</pool>)");
    CHECK(p.name == "default");
    CHECK(p.type == "dir");
    CHECK(p.path == "/var/lib/libvirt/images");
    CHECK(p.capacity == 107374182400ULL);
    CHECK(p.available == (90ULL << 30));
}

TEST_CASE("libvirt URIs without a host are local", "[provision][host]") {
    CHECK(is_local_libvirt_uri("qemu:///system"));
    CHECK(is_local_libvirt_uri("qemu:///session"));
    CHECK(is_local_libvirt_uri("test:///default"));
    CHECK(is_local_libvirt_uri("qemu+unix:///system?socket=/tmp/x.sock"));
    CHECK_FALSE(is_local_libvirt_uri("qemu+ssh://root@kvm1/system"));
    CHECK_FALSE(is_local_libvirt_uri("qemu+tcp://10.0.0.5/system"));
}

TEST_CASE("free space is measured at the nearest existing ancestor", "[provision][host]") {
    test::TempDir dir;
    const auto direct = free_bytes(dir.path().string());
    REQUIRE(direct);
    CHECK(*direct > 0);
    const auto below = free_bytes((dir.path() / "not" / "yet" / "there").string());
    REQUIRE(below);
    CHECK(*below > 0);
}

TEST_CASE("a missing KVM device is reported as not usable with the reason", "[provision][host]") {
    const auto probe = probe_kvm("/nonexistent/kvm");
    CHECK_FALSE(probe.usable);
    CHECK(probe.detail == "cannot open /nonexistent/kvm: No such file or directory");
}

TEST_CASE("the KVM probe runs a guest and answers within its deadline, with a reason either way",
          "[provision][host][kvm]") {
    // On hosts where KVM guests hang (nested virtualisation) the probe's child hangs in KVM_RUN;
    // the probe must still come back, a little after the deadline at most.
    const auto deadline = std::chrono::milliseconds(700);
    const auto t0 = std::chrono::steady_clock::now();
    const auto probe = probe_kvm("/dev/kvm", deadline);
    const auto took = std::chrono::steady_clock::now() - t0;
    INFO(probe.detail);
    CHECK(took < deadline + std::chrono::seconds(2));
    CHECK_FALSE(probe.detail.empty());
    if (probe.usable)
        CHECK_THAT(probe.detail, Catch::Contains("loop iterations to HLT"));
    else if (probe.guests_broken)
        CHECK_THAT(probe.detail, Catch::Contains("loop iterations"));
    // Whatever the outcome, no child is left behind.
    CHECK(::waitpid(-1, nullptr, WNOHANG) <= 0);
}

TEST_CASE("a free loopback port is free, a listening one is busy", "[provision][host]") {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd, 1) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    const int port = ntohs(addr.sin_port);
    const auto busy = loopback_port_busy(port);
    REQUIRE(busy);
    CHECK(*busy == "Address already in use");
    ::close(fd);
    CHECK_FALSE(loopback_port_busy(port));
}

namespace {
/// A probe that counts its runs and answers `verdict`.
struct CountingProbe {
    KvmProbe verdict;
    int runs = 0;
    std::function<KvmProbe()> fn() {
        return [this] {
            ++runs;
            return verdict;
        };
    }
};
const KvmProbe k_broken{false, "a test vCPU on dev did not finish (KVM_RUN hung)", true};
} // namespace

TEST_CASE("a broken-guests KVM verdict is kept for the boot and not probed again",
          "[provision][host][kvm]") {
    labctl::test::TempDir dir;
    const auto device = dir.write("kvm", "").string();
    const auto file = (dir.path() / "run" / "labctl" / "kvm-verdict").string();
    CountingProbe probe{k_broken};
    const auto first = kept_kvm_probe(device, file, probe.fn());
    CHECK(first.guests_broken);
    CHECK(first.detail == k_broken.detail);
    CHECK(std::filesystem::exists(file));
    const auto second = kept_kvm_probe(device, file, probe.fn());
    CHECK(probe.runs == 1);
    CHECK_FALSE(second.usable);
    CHECK(second.guests_broken);
    CHECK_THAT(second.detail,
               Catch::StartsWith(k_broken.detail) &&
                   Catch::Contains("found earlier in this boot and kept in " + file));
}

TEST_CASE("a usable KVM verdict is not kept: it is found again in milliseconds",
          "[provision][host][kvm]") {
    labctl::test::TempDir dir;
    const auto device = dir.write("kvm", "").string();
    const auto file = (dir.path() / "kvm-verdict").string();
    CountingProbe probe{{true, "usable", false}};
    CHECK(kept_kvm_probe(device, file, probe.fn()).usable);
    CHECK(kept_kvm_probe(device, file, probe.fn()).usable);
    CHECK(probe.runs == 2);
    CHECK_FALSE(std::filesystem::exists(file));
}

TEST_CASE("a kept KVM verdict of another device node is probed again (a module reload)",
          "[provision][host][kvm]") {
    labctl::test::TempDir dir;
    const auto device = dir.write("kvm", "").string();
    const auto file = (dir.path() / "kvm-verdict").string();
    CountingProbe probe{k_broken};
    kept_kvm_probe(device, file, probe.fn());
    // A new node under the same name, as devtmpfs makes when kvm is loaded again.
    const auto other = dir.write("kvm.new", "").string();
    std::filesystem::rename(other, device);
    probe.verdict = {true, "usable now", false};
    const auto again = kept_kvm_probe(device, file, probe.fn());
    CHECK(probe.runs == 2);
    CHECK(again.usable);
    CHECK(again.detail == "usable now");
}

TEST_CASE("a KVM verdict that cannot be kept still answers", "[provision][host][kvm]") {
    labctl::test::TempDir dir;
    const auto device = dir.write("kvm", "").string();
    // The runtime directory is a file: nothing can be written under it.
    dir.write("run", "");
    const auto file = (dir.path() / "run" / "labctl" / "kvm-verdict").string();
    CountingProbe probe{k_broken};
    CHECK(kept_kvm_probe(device, file, probe.fn()).detail == k_broken.detail);
    CHECK(kept_kvm_probe(device, file, probe.fn()).detail == k_broken.detail);
    CHECK(probe.runs == 2);
}
