#pragma once
// LabSpec: the typed form of lab.yaml (schema version 1). Every field has a default except
// `project` and `vms`. Paths are absolute after loading (relative ones are resolved against the
// directory of lab.yaml).

#include <chrono>
#include <cstdint>
#include <map>
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

struct NetworkSpec {
    std::string name;         ///< default: "<project>-net"
    std::string mode = "nat"; ///< nat (libvirt NAT network) | user (SLIRP, ports on 127.0.0.1)
    std::string cidr = "10.66.77.0/24"; ///< IPv4 network; the gateway is the first host address
    std::string domain = "lab.local";
};

struct ImageSpec {
    std::string path; ///< local file (absolute after loading); exclusive with url
    std::string url;
    std::string sha256;           ///< 64 lowercase hex characters; required with url
    std::string format = "qcow2"; ///< qcow2 | raw
};

struct SshSpec {
    std::string user = "labctl";
    std::string private_key = ".labctl/id_ed25519"; ///< public key is private_key + ".pub"
    std::string known_hosts = ".labctl/known_hosts";
    int port = 22;
};

struct VmSpec {
    std::string name;
    int cpus = 2;
    std::uint64_t memory_bytes = 4ULL << 30;
    std::uint64_t disk_bytes = 20ULL << 30;
    std::string ip; ///< IPv4 inside network.cidr; empty = assigned in order from .10
    std::vector<std::string> roles;
    SourceLocation where; ///< the VM's entry in lab.yaml
};

struct HardeningSpec {
    std::string profile = "modern";       ///< modern | compat
    std::vector<std::string> allow_users; ///< always contains ssh.user after loading
    std::chrono::seconds revert_after{120};
};

struct DeploySpec {
    std::string target_vm; ///< default: the first VM with role "stack", else the first VM
    std::string host;      ///< deploy to an existing host instead (LAB_HOST overrides)
    std::string stack_dir = "stacks/lab";
    std::string remote_dir = "/opt/labctl/lab";
    std::string project = "lab"; ///< compose project name (PROJECT overrides)
    std::chrono::seconds wait_timeout{600};
    std::string image_registry; ///< prefix for every image, e.g. "registry.example:5000/"
    std::vector<std::string> preload_images; ///< or the single entry "auto"
};

struct VerifySpec {
    std::vector<std::string> checks; ///< default: every check except nginx.resilience
    std::chrono::seconds deadline{180};
    std::map<std::string, std::chrono::seconds> check_deadlines;
    std::map<std::string, std::string> endpoints; ///< e.g. "grafana" -> "http://127.0.0.1:3000"
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
    HardeningSpec hardening;
    DeploySpec deploy;
    VerifySpec verify;

    /// Directory for labctl's local state of this lab: <base_dir>/.labctl
    std::string state_dir() const;
    const VmSpec* find_vm(const std::string& name) const;
};

/// All check names `verify` knows, in report order.
const std::vector<std::string>& known_checks();

} // namespace labctl::config
