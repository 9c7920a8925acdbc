// A lab on two libvirt hosts for real (issue #15 §2 and §3): this machine's libvirtd ("local")
// and a remote one ("kvm") that labctl reaches only over `qemu+ssh://`, whose VM it reaches only
// through that host as an SSH jump. remote_libvirt_test.sh builds two network namespaces inside
// `unshare --net --mount --fork` (A: labctl and the local host's private libvirtd; B: the remote
// hypervisor with its own private libvirtd and sshd, joined to A by a veth pair); B's NAT network
// has no route from A. The machine's own libvirtd, network stack and libvirt's `default` network
// are never touched. The guests are stand-in sshds at the VMs' reserved addresses with the host
// keys labctl pinned for them (no VM boots in CI).

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

using labctl::test::contains;

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

TEST_CASE("a lab on two libvirt hosts, this machine's and a remote one over qemu+ssh: doctor, "
          "plan, provision (all or nothing across hosts, volumes streamed over ssh), status and "
          "down on both, the remote VM reached only through its host as an SSH jump",
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
    keygen(w / ".labctl" / "hostkeys" / "vm0" / "ssh_host_ed25519_key");
    keygen(w / "jump_key");   // root on B
    keygen(w / "b_host_key"); // B's sshd
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
    fs::create_directories(w / "guest0-dropins");
    dir.write("guest0-sshd_config",
              fmt::format("Include {0}/guest0-dropins/*.conf\nListenAddress 10.78.0.20\nPort 22\n"
                          "HostKey {0}/.labctl/hostkeys/vm0/ssh_host_ed25519_key\n"
                          "PidFile {0}/guest0-sshd.pid\nAuthorizedKeysFile "
                          "{0}/guest_authorized_keys\nStrictModes no\nUsePAM yes\n"
                          "PasswordAuthentication yes\nKbdInteractiveAuthentication no\n"
                          "PermitRootLogin no\nSubsystem sftp internal-sftp\n",
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
  pool: labremote-pool
  domain_type: qemu
hosts:
  local:
    uri: qemu:///system
    pool_path: {1}/a-pool
  kvm:
    uri: "{0}"
    pool_path: {1}/b-pool
network:
  mode: nat
  cidr: 10.78.0.0/24
image:
  path: base.qcow2
ssh:
  user: {2}
  jump_key: jump_key
vms:
  - name: vm0
    memory: 512MiB
    disk: 2GiB
    ip: 10.78.0.20
  - name: vm1
    host: kvm
    memory: 512MiB
    disk: 2GiB
    ip: 10.78.0.10
hardening:
  revert_seconds: 60
  # the host parts would change this machine: a VM gets them (e2e)
  firewall: false
  fail2ban: false
  auditd: false
  sysctl: false
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
    std::map<std::string, nlohmann::json> rows; // "name@host"
    for (const auto& c : dj["checks"])
        rows[c["name"].get<std::string>() + "@" + c.value("host", std::string())] = c;
    CHECK(rows["kvm@kvm"]["status"] == "skip"); // B's KVM is not this machine's to probe
    for (const char* host : {"local", "kvm"}) {
        const std::string h = host;
        CHECK(rows["libvirt.uri@" + h]["status"] == "ok");
        CHECK(contains(rows["libvirt.uri@" + h]["detail"].get<std::string>(), "QEMU driver"));
        // Missing: labctl creates it at pool_path.
        CHECK(rows["libvirt.pool@" + h]["status"] == "warn");
        CHECK(
            contains(rows["libvirt.pool@" + h]["detail"].get<std::string>(), "it will be created"));
    }
    CHECK(rows["ssh.jump@kvm"]["status"] == "ok");
    CHECK(contains(rows["ssh.jump@kvm"]["detail"].get<std::string>(), "root@10.79.0.2:22 answers"));
    CHECK(rows["ssh.jump@local"]["status"] == "skip"); // a local host's VMs: reached directly
    CHECK(rows.count("tools.rsync@") == 1);

    const auto plan = result(w, "plan");
    INFO("plan: " << plan.out << plan.err);
    CHECK(plan.rc == 10);
    CHECK(contains(plan.out, "Host local (qemu:///system)"));
    CHECK(contains(plan.out, "labremote-vm0"));
    CHECK(contains(plan.out, "Host kvm (qemu+ssh://"));
    CHECK(contains(plan.out, "labremote-vm1"));

    // No guest boots from a blank disk: the waits end at their deadline (exit 4) after every
    // object was made on both hosts. Without --keep-on-failure both hosts are rolled back.
    const auto rollback = result(w, "provision-rollback");
    INFO("provision without --keep-on-failure: " << rollback.err);
    CHECK(rollback.rc == 4);
    CHECK(contains(rollback.err, "labctl: error: host '"));
    // The cause is a host's own timeout, not the other host's reaction to it.
    CHECK(contains(rollback.err, "(phase ip"));
    CHECK_FALSE(contains(rollback.err, "labctl: error: host 'local': VM 'vm0': wait cancelled"));
    CHECK_FALSE(contains(rollback.err, "labctl: error: host 'kvm': VM 'vm1': wait cancelled"));
    CHECK(contains(rollback.err, "the other hosts: '"));
    CHECK(contains(rollback.err, "rolled back"));
    const auto after_rollback = read_file(w / "after-rollback.txt");
    INFO("left after the rollback:\n" << after_rollback);
    CHECK_FALSE(contains(after_rollback, "labremote-"));
    CHECK_FALSE(contains(after_rollback, "base.qcow2"));

    // With it: what was made stays, on both hosts (the base image streamed to B over ssh).
    const auto prov = result(w, "provision");
    INFO("provision: " << prov.err);
    CHECK(prov.rc == 4);
    CHECK((contains(prov.err, "(phase ip") || contains(prov.err, "phase ssh")));
    CHECK(contains(prov.err, "create volume base.qcow2"));
    CHECK(contains(read_file(w / "local-domains-after-provision.txt"), "labremote-vm0"));
    CHECK_FALSE(contains(read_file(w / "domains-after-provision.txt"), "labremote-vm0"));
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
    REQUIRE(sj["vms"].size() == 2);
    for (const auto& vm : sj["vms"]) {
        CHECK(vm["state"] == "running");
        CHECK(vm["host"] == (vm["vm"] == "vm1" ? "kvm" : "local"));
        CHECK(vm["address"] == (vm["vm"] == "vm1" ? "10.78.0.10" : "10.78.0.20"));
    }

    // The guest's network is B's alone: from A only the jump reaches it.
    CHECK(trimmed(read_file(w / "direct.rc")) != "0");
    const auto harden = result(w, "harden");
    INFO("harden: " << harden.out << harden.err);
    CHECK(harden.rc == 0);
    CHECK(guest_user.password_state() == "L");
    CHECK(contains(read_file(w / "guest-dropins" / "01-labctl.conf"), "PasswordAuthentication no"));
    const auto harden_host = result(w, "harden-host");
    INFO("harden --host: " << harden_host.out << harden_host.err);
    CHECK(harden_host.rc == 0);
    CHECK(contains(harden_host.err, "already hardened, nothing changed"));
    const auto ssh = result(w, "ssh");
    INFO("ssh: " << ssh.err);
    CHECK(ssh.rc == 0);
    CHECK(ssh.out == "hello-through-the-hypervisor\n");
    const auto ssh0 = result(w, "ssh0");
    INFO("ssh vm0: " << ssh0.err);
    CHECK(ssh0.rc == 0);
    CHECK(ssh0.out == "hello-from-the-local-host\n");
    CHECK(
        contains(read_file(w / "guest0-dropins" / "01-labctl.conf"), "PasswordAuthentication no"));
    CHECK(contains(read_file(w / ".labctl" / "ssh_config"),
                   "Host labctl-jump-kvm\n    HostName 10.79.0.2\n    Port 22\n    User root"));

    const auto down = result(w, "down");
    INFO("down: " << down.out << down.err);
    CHECK(down.rc == 0);
    CHECK_FALSE(contains(read_file(w / "domains-after-down.txt"), "labremote"));
    const auto left_vols = read_file(w / "vols-after-down.txt");
    INFO("volumes left on B: " << left_vols);
    CHECK_FALSE(contains(left_vols, "labremote"));
    CHECK_FALSE(contains(left_vols, "base.qcow2"));
    CHECK_FALSE(contains(read_file(w / "nets-after-down.txt"), "labremote-net"));
    const auto after_down = read_file(w / "after-down.txt");
    INFO("left after down --purge:\n" << after_down);
    CHECK_FALSE(contains(after_down, "labremote-"));
    CHECK_FALSE(contains(after_down, "base.qcow2"));
    CHECK(test::children_of_self().empty());
}
