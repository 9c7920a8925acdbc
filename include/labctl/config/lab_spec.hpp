#pragma once
// LabSpec: the typed form of lab.yaml (schema version 1). Every field has a default except
// `project` and `vms`. Paths are absolute after loading (relative ones are resolved against the
// directory of lab.yaml).

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <labctl/config/diagnostic.hpp>

namespace labctl::config {

inline constexpr int k_schema_version = 1;

struct LibvirtSpec {
    std::string uri = "qemu:///system";
    std::string pool = "default";
    std::string pool_path;            ///< when set, the pool is created as a dir pool if missing
    std::string domain_type = "auto"; ///< kvm | qemu | auto (kvm when usable)
};

/// One TCP port forward of network.mode user: 127.0.0.1:host on this machine -> guest port.
struct PortForward {
    int guest = 0;
    int host = 0;
    SourceLocation where; ///< the entry in lab.yaml (network.mode for the ssh forward labctl adds)
};

/// QEMU's user-mode (SLIRP) network as every guest sees it: labctl configures the guest
/// statically (DHCP under SLIRP proved unreliable) and never touches network.cidr in this mode.
inline constexpr const char* k_user_guest_ip = "10.0.2.15";
inline constexpr const char* k_user_gateway = "10.0.2.2";
inline constexpr const char* k_user_cidr = "10.0.2.0/24";
/// Host side of the guest's SSH forward when lab.yaml names none.
inline constexpr int k_default_ssh_host_port = 2222;

struct NetworkSpec {
    std::string name;         ///< default: "<project>-net"
    std::string mode = "nat"; ///< nat (libvirt NAT network) | user (SLIRP, ports on 127.0.0.1)
    std::string cidr = "10.66.77.0/24"; ///< IPv4 network; the gateway is the first host address
    std::string domain = "lab.local";
    /// mode user only: the forwards as written, plus the ssh.port forward labctl adds when none is
    /// given (host 2222, or the next free port). Each VM's own list is VmSpec::forwards.
    std::vector<PortForward> forwards;
};

/// image.build: labctl builds the image itself (mmdebstrap), with everything the guest needs
/// baked in, so the guest never installs anything at boot.
struct ImageBuildSpec {
    std::string suite = "bookworm";
    std::vector<std::string> packages; ///< extra Debian packages besides labctl's own list
};

struct ImageSpec {
    std::string path; ///< local file (absolute after loading); exclusive with url and build
    std::string url;
    std::string sha256; ///< 64 lowercase hex characters; with url, one of sha256, sha512, checksums
    std::string sha512; ///< 128 lowercase hex characters (url only)
    std::string checksums; ///< URL of the SHA256SUMS / SHA512SUMS beside url's file (url only)
    std::string format = "qcow2"; ///< qcow2 | raw
    /// Direct kernel boot: kernel and initrd (absolute after loading) go together; the disk then
    /// needs no boot loader. cmdline defaults to k_default_cmdline when kernel is set.
    std::string kernel;
    std::string initrd;
    std::string cmdline;
    /// Set: labctl builds the image (image.build in lab.yaml). The CLI layer runs the build and
    /// fills path, kernel, initrd and cmdline before provisioning; build stays set, which tells
    /// the seed that the guest must not install packages (it contacts nothing).
    std::optional<ImageBuildSpec> build;

    bool labctl_built() const { return build.has_value(); }
    bool direct_kernel_boot() const { return !kernel.empty(); }
};

inline constexpr const char* k_default_cmdline = "root=/dev/vda rw console=ttyS0";

struct SshSpec {
    std::string user = "labctl";
    std::string private_key = ".labctl/id_ed25519"; ///< public key is private_key + ".pub"
    std::string known_hosts = ".labctl/known_hosts";
    int port = 22;
    /// How this machine reaches the VMs: "auto" (through the host of a qemu+ssh:// libvirt.uri,
    /// whose NAT network only it can reach), "none" (directly), or [USER@]HOST[:PORT] of a jump
    /// host. Its key is pinned in known_hosts like a guest's.
    std::string jump = "auto";
    /// Key for the jump host; empty: ssh-agent, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa (as
    /// ssh, and so libvirt's qemu+ssh, would use).
    std::string jump_key;
};

/// One libvirt host of the lab: `hosts:` in lab.yaml names several; without it the lab has one,
/// named k_default_host, made of the libvirt section and ssh.jump.
struct HostSpec {
    std::string name;
    /// Its URI, pool, pool_path and domain_type: what the host entry leaves out comes from the
    /// libvirt section (after the environment and flags), so LABCTL_POOL applies to every host.
    LibvirtSpec libvirt;
    /// How its VMs are reached from here, as ssh.jump (auto, none, [USER@]HOST[:PORT]); ssh.jump
    /// when the entry has none.
    std::string jump = "auto";
    SourceLocation where; ///< its entry in lab.yaml (the libvirt section for the implicit host)
};

inline constexpr const char* k_default_host = "default";

/// A jump host as LabSpec::jump_host() resolves it.
struct JumpSpec {
    std::string user;
    std::string host;
    int port = 22;
    std::string private_key; ///< ssh.jump_key, or the first default key that exists ("" = agent)
};

struct VmSpec {
    std::string name;
    int cpus = 2;
    std::uint64_t memory_bytes = 4ULL << 30;
    std::uint64_t disk_bytes = 20ULL << 30;
    std::string ip; ///< IPv4 inside network.cidr; empty = assigned in order from .10
    std::vector<std::string> roles;
    std::string host;     ///< the HostSpec it runs on; after loading always one of LabSpec::hosts
    SourceLocation where; ///< the VM's entry in lab.yaml
    /// network.mode user: this VM's forwards. The n-th VM (from 0) binds every host port + n, so
    /// several VMs never fight over one port. Empty in mode nat.
    std::vector<PortForward> forwards;

    /// The host port forwarded to `guest_port`, if any (mode user).
    std::optional<int> host_port(int guest_port) const;
};

/// A port or range the host firewall opens besides SSH and the stack's (hardening.firewall.allow).
struct PortRule {
    std::string protocol = "tcp"; ///< tcp | udp
    int first = 0;
    int last = 0; ///< 0: one port
};

struct FirewallSpec {
    bool enabled = true;
    /// IPv4/IPv6 addresses or networks SSH may come from; empty: anywhere. labctl's own address
    /// is always added.
    std::vector<std::string> ssh_sources;
    std::vector<PortRule> allow;
};

struct HardeningSpec {
    std::string profile = "modern";       ///< modern | compat
    std::vector<std::string> allow_users; ///< always contains ssh.user after loading
    std::chrono::seconds revert_after{120};
    // The host parts beyond sshd (issue #18), each on unless turned off.
    FirewallSpec firewall;
    bool fail2ban = true;
    bool auditd = true;
    bool sysctl = true;
    bool host_parts() const { return firewall.enabled || fail2ban || auditd || sysctl; }
};

struct DeploySpec {
    /// The VMs the stack goes to: those with this role (every one of them), unless target_vm
    /// names one; without any, the first VM.
    std::string role = "stack";
    /// One VM named in lab.yaml; after loading the first of target_vms (whichever way chosen).
    std::string target_vm;
    /// After loading: the VMs the stack goes to, in lab.yaml order (see LabSpec::deploy_vms).
    std::vector<std::string> target_vms;
    std::string host; ///< deploy to an existing host instead (LAB_HOST overrides)
    std::string stack_dir = "stacks/lab";
    std::string remote_dir = "/opt/labctl/lab";
    std::string project = "lab"; ///< compose project name (PROJECT overrides)
    std::chrono::seconds wait_timeout{600};
    std::string image_registry; ///< prefix for every image, e.g. "registry.example:5000/"
    std::vector<std::string> preload_images;    ///< or the single entry "auto"
    std::chrono::seconds preload_timeout{3600}; ///< deadline of the one `docker load` stream
    /// Image pin set: <stack_dir>/pins/<name>.env gives compose its variables ("original",
    /// "current"); empty: the compose file's own defaults. LAB_PINS overrides.
    std::string pins;
};

struct VerifySpec {
    std::vector<std::string> checks; ///< default: every check except nginx.resilience
    std::chrono::seconds deadline{180};
    std::map<std::string, std::chrono::seconds> check_deadlines;
    std::map<std::string, std::string> endpoints; ///< e.g. "grafana" -> "http://127.0.0.1:3000"
    std::vector<std::string> services;        ///< stack.health probes these; empty: every service
    std::vector<std::string> prometheus_jobs; ///< prometheus.targets expects these; empty: all
};

struct LabSpec {
    int version = k_schema_version;
    std::string source_file; ///< absolute path of lab.yaml
    std::string base_dir;    ///< its directory; relative paths resolve here
    std::string project;
    LibvirtSpec libvirt;
    NetworkSpec network;
    ImageSpec image;
    SshSpec ssh;
    std::vector<VmSpec> vms;
    /// Where the VMs run; after loading at least one, in lab.yaml order (the first is where a VM
    /// without `host:` goes). Without `hosts:` in lab.yaml, the one host of the libvirt section.
    std::vector<HostSpec> hosts;
    HardeningSpec hardening;
    DeploySpec deploy;
    VerifySpec verify;

    /// Directory for labctl's local state of this lab: <base_dir>/.labctl
    std::string state_dir() const;
    bool user_network() const { return network.mode == "user"; }
    /// Where this machine reaches the VM's sshd: its own address and ssh.port (mode nat), or
    /// 127.0.0.1 and the host side of its ssh.port forward (mode user). Host keys are pinned in
    /// known_hosts under exactly this host and port ("[127.0.0.1]:2222").
    struct Address {
        std::string host;
        int port = 22;
    };
    Address ssh_address(const VmSpec& vm) const;
    /// The address users and checks open for a TCP port of the VM: vm.ip:port (nat), or
    /// 127.0.0.1 and the forwarded host port (user; nullopt when the port is not forwarded).
    std::optional<Address> service_address(const VmSpec& vm, int guest_port) const;
    const VmSpec* find_vm(const std::string& name) const;
    /// The jump host the VMs are reached through (ssh.jump; with "auto", the user, host and
    /// port of a qemu+ssh:// libvirt.uri), or nullopt when they are reached directly. In a lab
    /// of several hosts this is the first host's; jump_for() says it per host.
    std::optional<JumpSpec> jump_host() const;
    /// The jump host of `host`'s VMs (its jump setting and URI), or nullopt: reached directly.
    std::optional<JumpSpec> jump_for(const HostSpec& host) const;
    /// The host `vm` runs on (the first host when its name is unknown, which loading refuses).
    const HostSpec& host_of(const VmSpec& vm) const;
    const HostSpec* find_host(const std::string& name) const;
    /// More than one host: outputs name the host of each VM and object.
    bool several_hosts() const { return hosts.size() > 1; }
    /// The lab as one of its hosts sees it: libvirt is the host's, ssh.jump its jump, vms only
    /// those placed there, hosts only that one. The provision module works on such views.
    LabSpec for_host(const HostSpec& host) const;
    /// The VMs `deploy` (and `verify`) go to: deploy.target_vm when lab.yaml names it, else
    /// every VM with deploy.role, else the first VM.
    std::vector<const VmSpec*> deploy_vms() const;
    /// The SSH destinations labctl works on, each once as USER@HOST:PORT (an IPv6 address in
    /// brackets): every VM at its ssh_address() as ssh.user, in lab.yaml order, then deploy.host
    /// with ssh.user and ssh.port for what it leaves out. Jump hosts are not among them (labctl
    /// only passes through them). Shell completion offers these for --host.
    std::vector<std::string> ssh_destinations() const;
};

/// All check names `verify` knows, in report order.
const std::vector<std::string>& known_checks();

} // namespace labctl::config
