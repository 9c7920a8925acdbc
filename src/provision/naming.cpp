#include <fmt/format.h>

#include <labctl/core/encoding.hpp>
#include <labctl/core/text.hpp>
#include <labctl/provision/naming.hpp>

#include "xml.hpp"

namespace labctl::provision {

std::string domain_name(std::string_view project, std::string_view vm) {
    return fmt::format("{}-{}", project, vm);
}

std::string overlay_volume_name(std::string_view project, std::string_view vm) {
    return fmt::format("{}-{}.qcow2", project, vm);
}

std::string seed_volume_name(std::string_view project, std::string_view vm) {
    return fmt::format("{}-{}-seed.iso", project, vm);
}

std::string kernel_volume_name(std::string_view project) {
    return fmt::format("{}-kernel", project);
}

std::string initrd_volume_name(std::string_view project) {
    return fmt::format("{}-initrd", project);
}

std::string base_volume_name(const config::ImageSpec& image) {
    // A labctl-built image sits in its cache as ".../disk.qcow2" whatever its contents: named by
    // its checksum instead, so a rebuilt image never passes for the volume of an older one.
    if (image.labctl_built() && image.sha256.size() >= 16 && !image.path.empty())
        return fmt::format("labctl-{}-{}.{}", image.build->suite, image.sha256.substr(0, 16),
                           image.format);
    // A downloaded image keeps its URL's name: its cache path (named by digest) is known only
    // once it is downloaded, and plan must name the volume before that.
    std::string_view source = !image.url.empty() ? image.url : image.path;
    if (source.empty())
        return {};
    if (!image.url.empty()) {
        // Drop a query or fragment: ".../image.qcow2?download=1".
        source = source.substr(0, source.find_first_of("?#"));
    }
    while (!source.empty() && source.back() == '/')
        source.remove_suffix(1);
    const auto slash = source.rfind('/');
    const std::string_view base =
        slash == std::string_view::npos ? source : source.substr(slash + 1);
    std::string out;
    for (const char c : base) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        out += ok ? c : '-';
    }
    if (out.empty() || out == "." || out == "..")
        out = "labctl-base." + image.format;
    return out;
}

std::string deterministic_mac(std::string_view project, std::string_view vm) {
    const std::string h = sha256_hex(fmt::format("{}/{}", project, vm));
    return fmt::format("52:54:00:{}:{}:{}", h.substr(0, 2), h.substr(2, 2), h.substr(4, 2));
}

std::string vm_spec_hash(const config::LabSpec& spec, const config::VmSpec& vm) {
    // One "key=value" line per setting, in a fixed order. Paths that resolve against the lab
    // file's directory are left out (moving the lab must not replace its VMs); the image counts
    // by its volume name, checksum and url.
    std::string text;
    const auto add = [&text](std::string_view key, const auto& value) {
        text += fmt::format("{}={}\n", key, value);
    };
    text += k_spec_hash_recipe;
    text += '\n';
    add("project", spec.project);
    add("vm.name", vm.name);
    add("vm.cpus", vm.cpus);
    add("vm.memory_bytes", vm.memory_bytes);
    add("vm.disk_bytes", vm.disk_bytes);
    add("vm.ip", vm.ip);
    add("vm.mac", deterministic_mac(spec.project, vm.name));
    add("libvirt.pool", spec.libvirt.pool);
    add("libvirt.domain_type", spec.libvirt.domain_type);
    add("network.name", spec.network.name);
    add("network.mode", spec.network.mode);
    add("network.cidr", spec.network.cidr);
    add("network.domain", spec.network.domain);
    add("image.volume", base_volume_name(spec.image));
    add("image.url", spec.image.url);
    add("image.sha256", spec.image.sha256);
    // Added with image.url downloads; empty values keep older hashes unchanged.
    if (!spec.image.sha512.empty())
        add("image.sha512", spec.image.sha512);
    if (!spec.image.checksums.empty())
        add("image.checksums", spec.image.checksums);
    add("image.format", spec.image.format);
    // Added with direct kernel boot and mode user; empty values keep older hashes unchanged.
    // The kernel and initrd count by their volumes (fixed names), not by their paths.
    if (spec.image.direct_kernel_boot())
        add("image.cmdline", spec.image.cmdline);
    if (spec.image.labctl_built())
        add("image.build.suite", spec.image.build->suite);
    for (const auto& f : vm.forwards)
        add("vm.forward", fmt::format("{}->{}", f.host, f.guest));
    add("ssh.user", spec.ssh.user);
    add("ssh.port", spec.ssh.port);
    return sha256_hex(text);
}

std::string labctl_metadata_xml(const LabctlMetadata& metadata, bool declare_namespace) {
    // "labctl:" on every element, or (for virDomainSetMetadata) no prefix at all.
    const std::string p = declare_namespace ? fmt::format("{}:", k_metadata_prefix) : "";
    std::string body = fmt::format("<{0}project>{1}</{0}project>", p, xml_escape(metadata.project));
    if (!metadata.vm.empty())
        body += fmt::format("<{0}vm>{1}</{0}vm>", p, xml_escape(metadata.vm));
    if (!metadata.spec_hash.empty())
        body += fmt::format("<{0}spec-hash>{1}</{0}spec-hash>", p, xml_escape(metadata.spec_hash));
    if (metadata.cpus > 0)
        body += fmt::format("<{0}cpus>{1}</{0}cpus>", p, metadata.cpus);
    if (metadata.memory_bytes > 0)
        body += fmt::format("<{0}memory>{1}</{0}memory>", p, metadata.memory_bytes);
    if (metadata.disk_bytes > 0)
        body += fmt::format("<{0}disk>{1}</{0}disk>", p, metadata.disk_bytes);
    if (!declare_namespace)
        return fmt::format("<lab>{}</lab>", body);
    return fmt::format("<{0}:lab xmlns:{0}=\"{1}\">{2}</{0}:lab>", k_metadata_prefix,
                       k_metadata_namespace, body);
}

std::optional<LabctlMetadata> parse_labctl_metadata(std::string_view object_xml) {
    const xml::Element root = xml::parse(object_xml);
    const xml::Element* metadata = root.child("metadata");
    if (metadata == nullptr)
        return std::nullopt;
    for (const auto& e : metadata->children) {
        if (e.own_namespace() != k_metadata_namespace)
            continue;
        LabctlMetadata m;
        m.project = e.child_text("project");
        m.vm = e.child_text("vm");
        m.spec_hash = e.child_text("spec-hash");
        // A size that is not a plain number counts as not recorded.
        m.cpus = static_cast<unsigned>(parse_u64(e.child_text("cpus")).value_or(0));
        m.memory_bytes = parse_u64(e.child_text("memory")).value_or(0);
        m.disk_bytes = parse_u64(e.child_text("disk")).value_or(0);
        return m;
    }
    return std::nullopt;
}

} // namespace labctl::provision
