#pragma once
// The cloud-init NoCloud seed of a VM: its three files rendered from templates/cloud-init, the
// guest's SSH host key that labctl generates (and pins in the lab's known_hosts), and the ISO 9660
// image (volume id "cidata", Rock Ridge + Joliet) built in memory with libisofs.

#include <string>

#include <labctl/config/lab_spec.hpp>

namespace labctl::provision {

struct SeedFiles {
    std::string user_data;
    std::string meta_data;
    std::string network_config;
};

/// An ed25519 key pair in OpenSSH format.
struct HostKey {
    std::string private_key; ///< secret: never logged
    std::string public_key;  ///< "ssh-ed25519 AAAA... comment"
};

/// The VM's host key from <state_dir>/hostkeys/<vm>/ssh_host_ed25519_key, generated with
/// ssh-keygen (through the process runner) when missing, so a re-provisioned VM keeps its key.
HostKey ensure_host_key(const config::LabSpec& spec, const config::VmSpec& vm);

/// The public key line of ssh.private_key (ssh.private_key + ".pub"); Error(usage) naming the
/// file and how to create the pair when it is missing or empty.
std::string read_authorized_key(const config::LabSpec& spec);

/// Replaces the entries for the VM's address (vm.ip, ssh.port) in the lab's known_hosts with
/// `key`.
void pin_host_key(const config::LabSpec& spec, const config::VmSpec& vm, const HostKey& key);

/// "labctl-<first 16 hex of the spec hash>": changes exactly when the VM is replaced.
std::string instance_id(const config::LabSpec& spec, const config::VmSpec& vm);

/// user-data, meta-data and network-config for the VM. `authorized_key` is the public key line of
/// ssh.private_key.
SeedFiles render_seed(const config::LabSpec& spec, const config::VmSpec& vm,
                      const std::string& authorized_key, const HostKey& host_key);

/// The NoCloud ISO image (volume id CIDATA, Rock Ridge + Joliet) holding the three files.
/// Throws Error(internal) when libisofs fails.
std::string build_seed_iso(const SeedFiles& files);

} // namespace labctl::provision
