// A remote libvirt host for real (issue #15 §2): labctl provisions through `qemu+ssh://` on a
// libvirtd it reaches only over SSH, and reaches the VM only through that host as a jump.
// remote_libvirt_test.sh builds two network namespaces (A: labctl; B: the hypervisor with its
// own private libvirtd and sshd, joined to A by a veth pair) inside `unshare --net --mount
// --fork`; B's NAT network has no route from A. The host's own libvirtd, network stack and
// libvirt's `default` network are never touched. The guest is a stand-in sshd in B at the VM's
// reserved address with the host key labctl pinned for the VM (no VM boots in CI).

#include <fmt/format.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include <labctl/core/process.hpp>

#include "fault_support.hpp"
#include "skip.hpp"
#include "support.hpp"
#include "test_user.hpp"

using namespace labctl;
using namespace std::chrono_literals;
using labctl::test::read_file;
using labctl::test::TempDir;
namespace fs = std::filesystem;

namespace {

bool contains(const std::string& hay, const std::string& needle) {
    return hay.find(needle) != std::string::npos;
}

std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    return s;
}

void keygen(const fs::path& key) {
    fs::create_directories(key.parent_path());
    REQUIRE(run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key.string()}).ok());
}

/// "type base64" of a .pub file (without its comment).
std::string public_key(const fs::path& pub) {
    const auto text = read_file(pub);
    const auto sp = text.find(' ');
    return text.substr(0, text.find(' ', sp + 1));
}

struct Run {
    int rc = -1;
    std::string out, err;
    double seconds = 0;
};

Run result(const fs::path& w, const std::string& name) {
    Run r;
    r.rc = std::stoi(trimmed(read_file(w / (name + ".rc"))));
    r.out = read_file(w / (name + ".out"));
    r.err = read_file(w / (name + ".err"));
    r.seconds = std::stod(read_file(w / (name + ".time")));
    return r;
}

} // namespace

TEST_CASE("a remote libvirt host over qemu+ssh: doctor, plan, provision (volumes through libvirt "
          "streams over ssh), status and down there, and the VM reached only through the host "
          "as an SSH jump (harden, ssh)",
          "[remote][provision][jump]") {
    if (::geteuid() != 0)
        test::skip("network and mount namespaces with a private libvirtd need root");
    for (const char* p : {"unshare", "libvirtd", "virtlogd", "virsh", "virt-ssh-helper", "ip",
                          "qemu-img", "ssh", "/usr/sbin/sshd"})
        test::require_program(p);
    test::TestUser guest_user;
    TempDir dir;
    const fs::path w = dir.path();
    fs::permissions(w, fs::perms(0755)); // the guest user's sshd session reads authorized_keys

    keygen(w / ".labctl" / "id_ed25519");                                // the lab's key
    keygen(w / ".labctl" / "hostkeys" / "vm1" / "ssh_host_ed25519_key"); // the VM's host key
    keygen(w / "jump_key");                                              // root on B
    keygen(w / "b_host_key");                                            // B's sshd
    fs::create_directories(w / "guest-dropins");
    dir.write("b-authorized_keys", read_file(w / "jump_key.pub"));
    dir.write("guest_authorized_keys", read_file(w / ".labctl" / "id_ed25519.pub"));
    dir.write("b-sshd_config",
              fmt::format("ListenAddress 10.79.0.2\nPort 22\nHostKey {0}/b_host_key\n"
                          "PidFile {0}/b-sshd.pid\nAuthorizedKeysFile {0}/b-authorized_keys\n"
                          "StrictModes no\nUsePAM yes\nPasswordAuthentication no\n"
                          "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
                          "AllowTcpForwarding yes\n",
                          w.string()));
    // The guest as harden finds a Debian sshd: drop-ins first, passwords still allowed.
    dir.write(
        "guest-sshd_config",
        fmt::format("Include {0}/guest-dropins/*.conf\nListenAddress 10.78.0.10\nPort 22\n"
                    "HostKey {0}/.labctl/hostkeys/vm1/ssh_host_ed25519_key\n"
                    "PidFile {0}/guest-sshd.pid\nAuthorizedKeysFile {0}/guest_authorized_keys\n"
                    "StrictModes no\nUsePAM yes\nPasswordAuthentication yes\n"
                    "KbdInteractiveAuthentication no\nPermitRootLogin no\n"
                    "Subsystem sftp internal-sftp\n",
                    w.string()));
    const std::string b_key = public_key(w / "b_host_key.pub");
    // libvirt's ssh transport runs this instead of plain ssh (the URI's command=): B's key pinned,
    // never trusted on first use, and the key for root on B.
    dir.write("libvirt_known_hosts", "10.79.0.2 " + b_key + "\n");
    dir.write("ssh-pinned",
              fmt::format("#!/bin/sh\nexec ssh -o UserKnownHostsFile={0}/libvirt_known_hosts "
                          "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -i {0}/jump_key "
                          "-o BatchMode=yes \"$@\"\n",
                          w.string()));
    fs::permissions(w / "ssh-pinned", fs::perms(0755));
    const std::string uri =
        fmt::format("qemu+ssh://root@10.79.0.2/system?command={}/ssh-pinned", w.string());
    dir.write("uri", uri);
    // The lab pins the jump host (B) by hand, as a user would; provision adds the VM's key.
    dir.write(".labctl/known_hosts", "10.79.0.2 " + b_key + "\n");
    REQUIRE(
        run_process({"qemu-img", "create", "-q", "-f", "qcow2", (w / "base.qcow2").string(), "1G"})
            .ok());
    dir.write("lab.yaml", fmt::format(R"(version: 1
project: labremote
libvirt:
  uri: "{}"
  pool: labremote-pool
  pool_path: {}/b-pool
  domain_type: qemu
network:
  mode: nat
  cidr: 10.78.0.0/24
image:
  path: base.qcow2
ssh:
  user: {}
  jump_key: jump_key
vms:
  - name: vm1
    memory: 512MiB
    disk: 2GiB
    ip: 10.78.0.10
hardening:
  revert_seconds: 60
)",
                                      uri, w.string(), guest_user.name()));

    const auto script = test::source_dir() / "tests" / "integration" / "remote_libvirt_test.sh";
    ProcessOptions po;
    po.timeout = 420s;
    const auto r = run_process({"unshare", "--net", "--mount", "--fork", "--kill-child", "bash",
                                script.string(), w.string(), test::labctl_binary().string(),
                                guest_user.name()},
                               po);
    INFO("script: exit " << r.exit_code << "\n" << r.err << r.out);
    REQUIRE_FALSE(r.timed_out);
    REQUIRE(r.exit_code == 0);

    // The host this test runs on was never asked anything: A saw only lo and its veth end.
    const auto a_routes = read_file(w / "a-routes.txt");
    INFO("A's routes:\n" << a_routes);
    CHECK(a_routes == "10.79.0.0/24 dev va proto kernel scope link src 10.79.0.1 \n");

    const auto doctor = result(w, "doctor");
    INFO("doctor: " << doctor.out << doctor.err);
    const auto dj = nlohmann::json::parse(doctor.out);
    std::map<std::string, nlohmann::json> rows;
    for (const auto& c : dj["checks"])
        rows[c["name"].get<std::string>()] = c;
    CHECK(rows["kvm"]["status"] == "skip"); // B's KVM is not this machine's to probe
    CHECK(rows["libvirt.uri"]["status"] == "ok");
    CHECK(contains(rows["libvirt.uri"]["detail"].get<std::string>(), "QEMU driver"));
    CHECK(rows["libvirt.pool"]["status"] == "warn"); // missing: labctl creates it at pool_path
    CHECK(contains(rows["libvirt.pool"]["detail"].get<std::string>(), "it will be created"));
    CHECK(rows["ssh.jump"]["status"] == "ok");
    CHECK(contains(rows["ssh.jump"]["detail"].get<std::string>(), "root@10.79.0.2:22 answers"));

    const auto plan = result(w, "plan");
    INFO("plan: " << plan.out << plan.err);
    CHECK(plan.rc == 10);
    CHECK(contains(plan.out, "labremote-vm1"));

    // No guest boots from a blank disk: the wait ends at its deadline (exit 4) after every
    // object was made on B, the base image streamed through libvirt over ssh.
    const auto prov = result(w, "provision");
    INFO("provision: " << prov.err);
    CHECK(prov.rc == 4);
    CHECK((contains(prov.err, "(phase ip") || contains(prov.err, "phase ssh")));
    CHECK(contains(prov.err, "create volume base.qcow2"));
    const auto vols = read_file(w / "vols-after-provision.txt");
    INFO("volumes on B: " << vols);
    CHECK(contains(vols, "base.qcow2"));
    CHECK(contains(vols, "labremote-vm1.qcow2"));
    CHECK(contains(vols, "labremote-vm1-seed.iso"));
    CHECK(contains(read_file(w / "domains-after-provision.txt"), "labremote-vm1"));
    CHECK(contains(read_file(w / "net-after-provision.xml"), "ip='10.78.0.10'"));

    const auto status = result(w, "status");
    INFO("status: " << status.out << status.err);
    REQUIRE(status.rc == 0);
    const auto sj = nlohmann::json::parse(status.out);
    REQUIRE(sj["vms"].size() == 1);
    CHECK(sj["vms"][0]["vm"] == "vm1");
    CHECK(sj["vms"][0]["state"] == "running");
    CHECK(sj["vms"][0]["address"] == "10.78.0.10");

    // The guest's network is B's alone: from A only the jump reaches it.
    CHECK(trimmed(read_file(w / "direct.rc")) != "0");
    const auto harden = result(w, "harden");
    INFO("harden: " << harden.out << harden.err);
    CHECK(harden.rc == 0);
    CHECK(guest_user.password_state() == "L");
    CHECK(contains(read_file(w / "guest-dropins" / "01-labctl.conf"), "PasswordAuthentication no"));
    const auto ssh = result(w, "ssh");
    INFO("ssh: " << ssh.err);
    CHECK(ssh.rc == 0);
    CHECK(ssh.out == "hello-through-the-hypervisor\n");
    CHECK(contains(read_file(w / ".labctl" / "ssh_config"),
                   "Host labctl-jump\n    HostName 10.79.0.2\n    Port 22\n    User root"));

    const auto down = result(w, "down");
    INFO("down: " << down.out << down.err);
    CHECK(down.rc == 0);
    CHECK_FALSE(contains(read_file(w / "domains-after-down.txt"), "labremote"));
    const auto left_vols = read_file(w / "vols-after-down.txt");
    INFO("volumes left on B: " << left_vols);
    CHECK_FALSE(contains(left_vols, "labremote"));
    CHECK_FALSE(contains(left_vols, "base.qcow2"));
    CHECK_FALSE(contains(read_file(w / "nets-after-down.txt"), "labremote-net"));
    CHECK(test::children_of_self().empty());
}
