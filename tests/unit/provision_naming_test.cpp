// Names, MACs, spec hashes and metadata of the libvirt objects labctl makes.

#include <catch2/catch.hpp>
#include <regex>
#include <set>

#include <labctl/config/loader.hpp>
#include <labctl/core/encoding.hpp>
#include <labctl/core/error.hpp>
#include <labctl/provision/naming.hpp>

using namespace labctl;
using namespace labctl::provision;

namespace {

config::LabSpec spec_from(const std::string& yaml) {
    const auto result = config::load_lab_text(yaml, "/nonexistent/lab/lab.yaml");
    for (const auto& d : result.diagnostics)
        UNSCOPED_INFO(d.message);
    REQUIRE(result.ok());
    return *result.spec;
}

const std::string k_lab = R"(version: 1
project: lab
image:
  url: https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2
  sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
vms:
  - name: lab1
    cpus: 2
    memory: 2GiB
    disk: 20GiB
    roles: [stack]
  - name: lab2
)";

std::string replaced(std::string text, const std::string& from, const std::string& to) {
    const auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    return text.replace(at, from.size(), to);
}

} // namespace

TEST_CASE("object names are derived from project and VM", "[provision][naming]") {
    CHECK(domain_name("lab", "lab1") == "lab-lab1");
    CHECK(overlay_volume_name("lab", "lab1") == "lab-lab1.qcow2");
    CHECK(seed_volume_name("lab", "lab1") == "lab-lab1-seed.iso");
}

TEST_CASE("the base volume is named after the image file", "[provision][naming]") {
    config::ImageSpec img;
    CHECK(base_volume_name(img).empty());
    img.path = "/srv/images/debian-12-genericcloud-amd64.qcow2";
    CHECK(base_volume_name(img) == "debian-12-genericcloud-amd64.qcow2");
    img.path.clear();
    img.url = "https://example.org/images/my%20image.qcow2?download=1#x";
    CHECK(base_volume_name(img) == "my-20image.qcow2");
    img.url = "https://example.org/";
    CHECK(base_volume_name(img) == "example.org");
}

TEST_CASE("deterministic_mac is a stable, locally administered QEMU MAC", "[provision][naming]") {
    const auto mac = deterministic_mac("lab", "lab1");
    CHECK(std::regex_match(mac, std::regex("52:54:00:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}")));
    CHECK(deterministic_mac("lab", "lab1") == mac);
    // Its last three bytes are the first three of sha256("lab/lab1").
    const auto h = sha256_hex("lab/lab1");
    CHECK(mac == "52:54:00:" + h.substr(0, 2) + ":" + h.substr(2, 2) + ":" + h.substr(4, 2));
    // 0x52: the locally administered bit is set, the multicast bit is not.
    CHECK((0x52 & 0x02) != 0);
    CHECK((0x52 & 0x01) == 0);
}

TEST_CASE("deterministic_mac differs between VMs and projects", "[provision][naming]") {
    std::set<std::string> macs;
    for (const char* project : {"lab", "lab2", "obs-lab"})
        for (const char* vm : {"lab1", "lab2", "stack1", "worker"})
            macs.insert(deterministic_mac(project, vm));
    CHECK(macs.size() == 12);
    // "a-b" + "c" and "a" + "b-c" give the same domain name but not the same MAC.
    CHECK(deterministic_mac("a-b", "c") != deterministic_mac("a", "b-c"));
}

TEST_CASE("the spec hash is stable and 64 hex characters", "[provision][naming]") {
    const auto spec = spec_from(k_lab);
    const auto h = vm_spec_hash(spec, spec.vms[0]);
    CHECK(std::regex_match(h, std::regex("[0-9a-f]{64}")));
    CHECK(vm_spec_hash(spec_from(k_lab), spec_from(k_lab).vms[0]) == h);
    CHECK(vm_spec_hash(spec, spec.vms[1]) != h);
}

TEST_CASE("the spec hash changes when the VM's cpus change", "[provision][naming]") {
    const auto before = spec_from(k_lab);
    const auto after = spec_from(replaced(k_lab, "cpus: 2", "cpus: 4"));
    CHECK(vm_spec_hash(before, before.vms[0]) != vm_spec_hash(after, after.vms[0]));
    // The other VM is untouched.
    CHECK(vm_spec_hash(before, before.vms[1]) == vm_spec_hash(after, after.vms[1]));
}

TEST_CASE("the spec hash changes with memory, disk, network and image", "[provision][naming]") {
    const auto base = spec_from(k_lab);
    const auto h = vm_spec_hash(base, base.vms[0]);
    for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
             {"memory: 2GiB", "memory: 3GiB"},
             {"disk: 20GiB", "disk: 30GiB"},
             {"project: lab", "project: lab-b"},
             {"sha256: 0123", "sha256: 1123"},
             {"vms:", "network:\n  cidr: 10.66.78.0/24\nvms:"},
             {"vms:", "libvirt:\n  domain_type: qemu\nvms:"}}) {
        INFO(from << " -> " << to);
        const auto changed = spec_from(replaced(k_lab, from, to));
        CHECK(vm_spec_hash(changed, changed.vms[0]) != h);
    }
}

TEST_CASE("the spec hash ignores roles and the later stages' settings", "[provision][naming]") {
    const auto base = spec_from(k_lab);
    const auto h = vm_spec_hash(base, base.vms[0]);
    const auto changed =
        spec_from(replaced(replaced(k_lab, "roles: [stack]", "roles: [stack, metrics]"),
                           "vms:", "verify:\n  deadline: 5m\nhardening:\n  profile: compat\nvms:"));
    CHECK(vm_spec_hash(changed, changed.vms[0]) == h);
}

TEST_CASE("labctl metadata XML round-trips through the parser", "[provision][naming]") {
    const LabctlMetadata m{"lab", "lab1", std::string(64, 'a')};
    const auto element = labctl_metadata_xml(m);
    CHECK(element.find("xmlns:labctl=\"https://labctl.dev/xmlns/labctl/1\"") != std::string::npos);
    const auto parsed = parse_labctl_metadata("<domain type='kvm'><name>lab-lab1</name><metadata>" +
                                              element + "</metadata></domain>");
    REQUIRE(parsed);
    CHECK(parsed->project == "lab");
    CHECK(parsed->vm == "lab1");
    CHECK(parsed->spec_hash == m.spec_hash);
    const auto network = labctl_metadata_xml({"a&b", "", ""});
    CHECK(network.find("<labctl:project>a&amp;b</labctl:project>") != std::string::npos);
    CHECK(network.find("vm>") == std::string::npos);
}

TEST_CASE("a domain's metadata records the sizes its spec hash was made with",
          "[provision][naming]") {
    const LabctlMetadata m{"lab", "lab1", std::string(64, 'a'), 3, 6ULL << 30, 22ULL << 30};
    const auto element = labctl_metadata_xml(m);
    CHECK(element.find("<labctl:cpus>3</labctl:cpus>") != std::string::npos);
    const auto parsed =
        parse_labctl_metadata("<domain><metadata>" + element + "</metadata></domain>");
    REQUIRE(parsed);
    CHECK(parsed->cpus == 3);
    CHECK(parsed->memory_bytes == 6ULL << 30);
    CHECK(parsed->disk_bytes == 22ULL << 30);
    // For virDomainSetMetadata: neither a prefix nor a namespace declaration.
    CHECK(
        labctl_metadata_xml(m, false) ==
        "<lab><project>lab</project><vm>lab1</vm><spec-hash>" + std::string(64, 'a') +
            "</spec-hash><cpus>3</cpus><memory>6442450944</memory><disk>23622320128</disk></lab>");
    // A domain made before sizes were recorded, or a size that is no number: not recorded (0).
    const auto old = parse_labctl_metadata(
        "<domain><metadata><labctl:lab xmlns:labctl=\"https://labctl.dev/xmlns/labctl/1\">"
        "<labctl:project>lab</labctl:project><labctl:cpus>-3</labctl:cpus></labctl:lab>"
        "</metadata></domain>");
    REQUIRE(old);
    CHECK(old->cpus == 0);
    CHECK(old->memory_bytes == 0);
}

TEST_CASE("metadata in another namespace or none at all is not labctl's", "[provision][naming]") {
    CHECK_FALSE(parse_labctl_metadata("<domain><name>x</name></domain>"));
    CHECK_FALSE(parse_labctl_metadata(
        "<domain><metadata><app:lab xmlns:app=\"https://example.org/1\"><app:project>lab"
        "</app:project></app:lab></metadata></domain>"));
    // A default-namespace declaration counts too, whatever the element is called.
    const auto m = parse_labctl_metadata(
        "<?xml version='1.0'?>\n<!-- c --><network><metadata><x xmlns=\"https://labctl.dev/xmlns/"
        "labctl/1\"><project> lab </project></x></metadata></network>");
    REQUIRE(m);
    CHECK(m->project == "lab");
    CHECK_THROWS_AS(parse_labctl_metadata("<domain><metadata></domain>"), labctl::Error);
}

TEST_CASE("a labctl-built image's base volume is named by suite and checksum, not by its file",
          "[provision][naming]") {
    labctl::config::ImageSpec img;
    img.path = "/var/cache/labctl/images/bookworm-4b16e949754d6087/disk.qcow2";
    img.sha256 = "ed2df1d968a768f223cc619cb137863365cf80118159c06b76f83e1f53b4fcf6";
    CHECK(base_volume_name(img) == "disk.qcow2"); // not built by labctl: the file's name
    img.build = labctl::config::ImageBuildSpec{};
    CHECK(base_volume_name(img) == "labctl-bookworm-ed2df1d968a768f2.qcow2");
    img.path.clear(); // not built yet (validate, plan --offline before the build)
    CHECK(base_volume_name(img).empty());
}
