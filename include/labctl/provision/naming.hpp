#pragma once
// The names and labels of the libvirt objects labctl makes for a lab, derived from the LabSpec
// alone so that every stage (plan, provision, down, status) agrees on them.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <labctl/config/lab_spec.hpp>

namespace labctl::provision {

/// XML namespace of labctl's <metadata> element in domain and network XML.
inline constexpr std::string_view k_metadata_namespace = "https://labctl.dev/xmlns/labctl/1";
/// The prefix labctl writes it with.
inline constexpr std::string_view k_metadata_prefix = "labctl";
/// Version of the spec hash recipe (part of the hashed text, so a new recipe changes every hash).
inline constexpr std::string_view k_spec_hash_recipe = "labctl-vm-spec/1";

/// "<project>-<vm>"
std::string domain_name(std::string_view project, std::string_view vm);
/// "<project>-<vm>.qcow2": the VM's copy-on-write disk on top of the base image.
std::string overlay_volume_name(std::string_view project, std::string_view vm);
/// "<project>-<vm>-seed.iso": the VM's cloud-init NoCloud seed.
std::string seed_volume_name(std::string_view project, std::string_view vm);
/// "<project>-kernel" and "<project>-initrd": the lab's copies of image.kernel and image.initrd in
/// the pool (uploaded like the base image, so they work over qemu+ssh:// and QEMU can read them).
std::string kernel_volume_name(std::string_view project);
std::string initrd_volume_name(std::string_view project);
/// The base image volume: the basename of image.path or image.url, with characters other than
/// letters, digits, '.', '_' and '-' replaced by '-'. "" when the spec names no image.
/// A labctl-built image (image.build, with path and sha256 filled in by the build) is
/// "labctl-<suite>-<first 16 hex of sha256>.<format>" instead.
std::string base_volume_name(const config::ImageSpec& image);

/// A locally stable MAC for the VM: 52:54:00 (QEMU's prefix) and three bytes of
/// sha256("<project>/<vm>"). Used for the VM's NIC and its DHCP host reservation.
std::string deterministic_mac(std::string_view project, std::string_view vm);

/// 64 hex characters: sha256 of every setting that shapes the VM's domain, disk and seed (project,
/// name, cpus, memory, disk, ip, domain type, network, image, pool, ssh user and port). Roles and
/// the stages after provisioning do not count. Stored in the domain's metadata with the sizes it
/// was made with: a hash that differs only by the sizes means the VM is updated in place
/// (vm_change.hpp), any other difference that it is replaced.
std::string vm_spec_hash(const config::LabSpec& spec, const config::VmSpec& vm);

/// What labctl writes into an object's <metadata>.
struct LabctlMetadata {
    std::string project;
    std::string vm;        ///< domains only
    std::string spec_hash; ///< domains only
    /// Domains only: the sizes spec_hash was made with (0: not recorded, a domain made before
    /// labctl recorded them).
    unsigned cpus = 0;
    std::uint64_t memory_bytes = 0;
    std::uint64_t disk_bytes = 0;
};

/// `<labctl:lab xmlns:labctl="..."><labctl:project>..</labctl:project>...</labctl:lab>` for a
/// domain's or network's <metadata> (vm, spec-hash and the sizes only when set). Without
/// `declare_namespace`: `<lab><project>..</project>...</lab>`, as virDomainSetMetadata wants it
/// (it puts the element in the namespace itself and refuses one that declares it).
std::string labctl_metadata_xml(const LabctlMetadata& metadata, bool declare_namespace = true);

/// Reads labctl's element from a domain or network XML document (the element in <metadata>
/// declared with k_metadata_namespace); nullopt when there is none. Throws Error(internal) when
/// the document is not XML.
std::optional<LabctlMetadata> parse_labctl_metadata(std::string_view object_xml);

} // namespace labctl::provision
