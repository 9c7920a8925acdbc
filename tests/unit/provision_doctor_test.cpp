// doctor's single checks as data: statuses, required flags and hints.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <labctl/provision/doctor.hpp>

#include "support.hpp"

using namespace labctl;
using namespace labctl::provision;

TEST_CASE("an unusable KVM is a warning unless domain_type is kvm", "[provision][doctor]") {
    const KvmProbe broken{false, "cannot open /dev/kvm: No such file or directory"};
    for (const char* type : {"auto", "qemu"}) {
        const auto c = check_kvm(broken, type);
        CHECK(c.status == CheckStatus::warn);
        CHECK_FALSE(c.required);
        CHECK(c.detail.find("emulated (TCG)") != std::string::npos);
    }
    const auto c = check_kvm(broken, "kvm");
    CHECK(c.status == CheckStatus::fail);
    CHECK(c.required);
    CHECK(c.hint.find("domain_type: qemu") != std::string::npos);
    CHECK(check_kvm({true, "ok"}, "kvm").status == CheckStatus::ok);
}

TEST_CASE("KVM whose guests crawl or hang: auto falls back to TCG (warn), kvm fails, and the hint "
          "does not send anyone to load modules",
          "[provision][doctor]") {
    const KvmProbe slow{false, "a test vCPU on /dev/kvm needed 1524 ms for 1000000 loop iterations",
                        true};
    const auto a = check_kvm(slow, "auto");
    CHECK(a.status == CheckStatus::warn);
    CHECK(a.detail.find("falls back to qemu (TCG emulation)") != std::string::npos);
    CHECK(a.hint.find("kvm_intel") == std::string::npos);
    const auto k = check_kvm(slow, "kvm");
    CHECK(k.status == CheckStatus::fail);
    CHECK(k.hint.find("libvirt.domain_type: qemu or auto") != std::string::npos);
}

TEST_CASE("a missing tool fails with the package to install", "[provision][doctor]") {
    const auto c = check_tool("labctl-no-such-tool", "some-package");
    CHECK(c.name == "tools.labctl-no-such-tool");
    CHECK(c.status == CheckStatus::fail);
    CHECK(c.required);
    CHECK(c.hint == "install it: apt-get install some-package");
    CHECK(check_tool("sh", "dash").status == CheckStatus::ok);
}

TEST_CASE("the SSH key check: missing warns, 0600 passes, readable by others fails",
          "[provision][doctor]") {
    test::TempDir dir;
    const auto key = (dir.path() / "id_ed25519").string();
    auto c = check_ssh_key(key);
    CHECK(c.status == CheckStatus::warn);
    CHECK(c.hint == "run 'labctl init' to create a key pair");

    dir.write("id_ed25519", "key\n");
    dir.write("id_ed25519.pub", "ssh-ed25519 AAAA\n");
    REQUIRE(::chmod(key.c_str(), 0600) == 0);
    c = check_ssh_key(key);
    CHECK(c.status == CheckStatus::ok);
    CHECK(c.detail == key + ", mode 0600");

    REQUIRE(::chmod(key.c_str(), 0640) == 0);
    c = check_ssh_key(key);
    CHECK(c.status == CheckStatus::fail);
    CHECK(c.detail.find("mode 0640") != std::string::npos);
    CHECK(c.hint == "chmod 600 " + key);

    REQUIRE(::chmod(key.c_str(), 0604) == 0);
    CHECK(check_ssh_key(key).status == CheckStatus::fail);
}

TEST_CASE("free space fails below 5 GiB and warns below the lab's disks", "[provision][doctor]") {
    constexpr std::uint64_t gib = 1ULL << 30;
    CHECK(check_free_space("disk.pool", "/p", 4 * gib, 0).status == CheckStatus::fail);
    CHECK(check_free_space("disk.pool", "/p", 10 * gib, 40 * gib).status == CheckStatus::warn);
    const auto ok = check_free_space("disk.pool", "/p", 50 * gib, 40 * gib);
    CHECK(ok.status == CheckStatus::ok);
    CHECK(ok.detail == "50 GiB free at /p; the lab's disks take up to 40 GiB");
    CHECK(check_free_space("disk.pool", "/p", std::nullopt, 0).status == CheckStatus::skip);
}

TEST_CASE("a report fails only on required failed checks", "[provision][doctor]") {
    DoctorReport r;
    r.checks.push_back({"kvm", CheckStatus::warn, false, "", ""});
    r.checks.push_back({"x", CheckStatus::fail, false, "", ""});
    CHECK(r.failed_required().empty());
    r.checks.push_back({"libvirt.uri", CheckStatus::fail, true, "", ""});
    CHECK(r.failed_required() == std::vector<std::string>{"libvirt.uri"});
    CHECK(r.count(CheckStatus::fail) == 2);
}

TEST_CASE("network.forwards: a busy 127.0.0.1 port fails naming it, unless the lab's own running "
          "VM holds it, a remote libvirt host is skipped",
          "[provision][doctor][user]") {
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

    config::LabSpec spec;
    spec.project = "lab";
    spec.network.mode = "user";
    config::VmSpec vm;
    vm.name = "lab1";
    vm.forwards = {{22, port, {}}};
    spec.vms = {vm};

    const auto busy = check_forwards(spec, nullptr, true);
    CHECK(busy.status == CheckStatus::fail);
    CHECK(busy.detail.find(std::to_string(port) + " (guest 22 of VM 'lab1'") != std::string::npos);

    Inventory inv;
    DomainFacts d;
    d.name = "lab-lab1";
    d.active = true;
    d.labctl = LabctlMetadata{"lab", "lab1", "hash"};
    inv.domains = {d};
    const auto held = check_forwards(spec, &inv, true);
    CHECK(held.status == CheckStatus::ok);
    CHECK(held.detail == std::to_string(port) + " held by the lab's running VMs");

    CHECK(check_forwards(spec, nullptr, false).status == CheckStatus::skip);
    ::close(fd);
    CHECK(check_forwards(spec, nullptr, true).detail == "1 forward free on 127.0.0.1");
}
