// Valid lab files and the LabSpec they turn into: defaults, relative paths, IP assignment,
// target_vm selection, allow_users.

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>

#include <labctl/config/loader.hpp>

#include "support.hpp"

using namespace std::chrono_literals;
using labctl::config::format;
using labctl::config::LabSpec;
using labctl::config::load_lab;
using labctl::config::LoadOptions;
using labctl::config::Severity;

namespace {

std::filesystem::path good_dir() {
    return labctl::test::fixture("config/good");
}

LabSpec load_good(const std::string& name) {
    LoadOptions options;
    options.path = (good_dir() / name).string();
    const auto result = load_lab(options);
    for (const auto& d : result.diagnostics) {
        INFO(format(d));
        CHECK(d.severity == Severity::warning); // only "the key does not exist yet"
        CHECK(d.message.find("ssh.private_key") == 0);
    }
    REQUIRE(result.ok());
    return *result.spec;
}

const std::uint64_t k_gib = 1ULL << 30;
const std::uint64_t k_mib = 1ULL << 20;

} // namespace

TEST_CASE("a minimal lab gets every default", "[config][good]") {
    const auto spec = load_good("minimal.yaml");
    const std::string dir = good_dir().lexically_normal().string();

    CHECK(spec.version == 1);
    CHECK(spec.source_file == dir + "/minimal.yaml");
    CHECK(spec.base_dir == dir);
    CHECK(spec.state_dir() == dir + "/.labctl");
    CHECK(spec.project == "mini");

    CHECK(spec.libvirt.uri == "qemu:///system");
    CHECK(spec.libvirt.pool == "default");
    CHECK(spec.libvirt.pool_path.empty());
    CHECK(spec.libvirt.domain_type == "auto");

    CHECK(spec.network.name == "mini-net");
    CHECK(spec.network.mode == "nat");
    CHECK(spec.network.cidr == "10.66.77.0/24");
    CHECK(spec.network.domain == "lab.local");

    CHECK(spec.image.path.empty());
    CHECK(spec.image.url.empty());
    CHECK(spec.image.format == "qcow2");

    CHECK(spec.ssh.user == "labctl");
    CHECK(spec.ssh.private_key == dir + "/.labctl/id_ed25519");
    CHECK(spec.ssh.known_hosts == dir + "/.labctl/known_hosts");
    CHECK(spec.ssh.port == 22);

    REQUIRE(spec.vms.size() == 1);
    const auto& vm = spec.vms[0];
    CHECK(vm.name == "node1");
    CHECK(vm.cpus == 2);
    CHECK(vm.memory_bytes == 4 * k_gib);
    CHECK(vm.disk_bytes == 20 * k_gib);
    CHECK(vm.ip == "10.66.77.10");
    CHECK(vm.roles.empty());
    CHECK(vm.where.line == 5);
    CHECK(vm.where.column == 5);

    CHECK(spec.hardening.profile == "modern");
    CHECK(spec.hardening.allow_users == std::vector<std::string>{"labctl"});
    CHECK(spec.hardening.revert_after == 120s);

    CHECK(spec.deploy.target_vm == "node1");
    CHECK(spec.deploy.host.empty());
    CHECK(spec.deploy.stack_dir == dir + "/stacks/lab");
    CHECK(spec.deploy.remote_dir == "/opt/labctl/lab");
    CHECK(spec.deploy.project == "lab");
    CHECK(spec.deploy.wait_timeout == 600s);
    CHECK(spec.deploy.image_registry.empty());
    CHECK(spec.deploy.preload_images.empty());

    CHECK(spec.verify.checks == std::vector<std::string>{"stack.health", "prometheus.targets",
                                                         "prometheus.sli", "trace.e2e",
                                                         "logs.correlated", "grafana.provisioned",
                                                         "ssh.hardened", "host.hardened"});
    CHECK(spec.verify.deadline == 180s);
    CHECK(spec.verify.check_deadlines.empty());
    CHECK(spec.verify.endpoints.empty());
    CHECK(spec.verify.services.empty());
    CHECK(spec.verify.prometheus_jobs.empty());

    CHECK(spec.find_vm("node1") == &spec.vms[0]);
    CHECK(spec.find_vm("node2") == nullptr);
}

TEST_CASE("a lab that sets every key keeps every value", "[config][good]") {
    const auto spec = load_good("full.yaml");
    const auto dir = good_dir().lexically_normal();

    CHECK(spec.project == "obs-lab");
    CHECK(spec.libvirt.uri == "qemu:///session");
    CHECK(spec.libvirt.pool == "labpool");
    CHECK(spec.libvirt.pool_path == "/var/lib/libvirt/images/obs-lab");
    CHECK(spec.libvirt.domain_type == "qemu");

    CHECK(spec.network.name == "obsnet");
    CHECK(spec.network.cidr == "172.20.0.0/16");
    CHECK(spec.network.domain == "obs.example");

    CHECK(spec.image.path.empty());
    CHECK(spec.image.url == "https://cloud.debian.org/images/cloud/bookworm/latest/"
                            "debian-12-genericcloud-amd64.qcow2");
    CHECK(spec.image.sha256 == "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");

    CHECK(spec.ssh.user == "ops");
    CHECK(spec.ssh.private_key == (dir / "keys/lab_ed25519").string());
    const char* home = std::getenv("HOME");
    REQUIRE(home != nullptr);
    CHECK(spec.ssh.known_hosts ==
          (std::filesystem::path(home) / "lab_known_hosts").lexically_normal().string());
    CHECK(spec.ssh.port == 2222);

    REQUIRE(spec.vms.size() == 3);
    CHECK(spec.vms[0].name == "gateway");
    CHECK(spec.vms[0].cpus == 1);
    CHECK(spec.vms[0].memory_bytes == 1536 * k_mib);
    CHECK(spec.vms[0].disk_bytes == 10 * k_gib);
    CHECK(spec.vms[0].roles == std::vector<std::string>{"edge"});
    CHECK(spec.vms[1].disk_bytes == 100'000'000'000ULL);
    CHECK(spec.vms[1].roles == std::vector<std::string>{"stack", "metrics"});
    CHECK(spec.vms[2].memory_bytes == 512 * k_mib);
    CHECK(spec.vms[2].disk_bytes == 2048 * k_gib);
    // .10 is taken by stack1, so the others get .11 and .12 in file order.
    CHECK(spec.vms[0].ip == "172.20.0.11");
    CHECK(spec.vms[1].ip == "172.20.0.10");
    CHECK(spec.vms[2].ip == "172.20.0.12");

    CHECK(spec.hardening.profile == "compat");
    CHECK(spec.hardening.allow_users == std::vector<std::string>{"admin", "ops"});
    CHECK(spec.hardening.revert_after == 300s);

    CHECK(spec.deploy.target_vm == "stack1"); // the first VM with role "stack"
    CHECK(spec.deploy.host == "192.0.2.50");
    CHECK(spec.deploy.stack_dir == (good_dir() / "../stacks/lab").lexically_normal().string());
    CHECK(spec.deploy.remote_dir == "/srv/obs");
    CHECK(spec.deploy.project == "obs_lab");
    CHECK(spec.deploy.wait_timeout == 5400s);
    CHECK(spec.deploy.image_registry == "registry.example:5000/");
    CHECK(spec.deploy.preload_images ==
          std::vector<std::string>{"prom/prometheus:v2.53.0", "grafana/grafana:11.1.0"});

    CHECK(spec.verify.checks ==
          std::vector<std::string>{"stack.health", "nginx.resilience", "trace.e2e"});
    CHECK(spec.verify.deadline == 90s);
    CHECK(spec.verify.check_deadlines == std::map<std::string, std::chrono::seconds>{
                                             {"trace.e2e", 300s}, {"nginx.resilience", 150s}});
    CHECK(spec.verify.endpoints ==
          std::map<std::string, std::string>{{"grafana", "http://127.0.0.1:3000"},
                                             {"prometheus", "https://prom.obs.example"}});
    CHECK(spec.verify.services == std::vector<std::string>{"api", "nginx", "prometheus"});
    CHECK(spec.verify.prometheus_jobs == std::vector<std::string>{"prometheus", "task-api"});
}

TEST_CASE("a user-mode (SLIRP) lab loads", "[config][good]") {
    const auto spec = load_good("user_mode.yaml");
    CHECK(spec.network.mode == "user");
    CHECK(spec.network.name == "e2e-net");
    CHECK(spec.network.cidr == "10.0.2.0/24");
    CHECK(spec.libvirt.domain_type == "qemu");
    CHECK(spec.image.path == (good_dir() / "images/bookworm.qcow2").lexically_normal().string());
    CHECK(spec.image.format == "raw");
    REQUIRE(spec.vms.size() == 1);
    CHECK(spec.vms[0].ip == "10.0.2.15");
    CHECK(spec.vms[0].host_port(22) == 2222); // the ssh forward is always there
    CHECK(spec.vms[0].memory_bytes == 2 * k_gib);
    CHECK(spec.deploy.target_vm == "vm1");
    CHECK(spec.deploy.wait_timeout == 900s);
}

TEST_CASE("mode user: forwards, the ssh forward added, every VM's host ports shifted by its "
          "index, direct kernel boot with the default cmdline",
          "[config][good][user]") {
    LoadOptions options;
    options.path = (good_dir() / "user_forwards.yaml").string();
    const auto result = load_lab(options);
    for (const auto& d : result.diagnostics) {
        INFO(format(d));
        CHECK(d.severity == Severity::warning); // the key, and "2 VMs cannot reach each other"
        CHECK((d.message.find("ssh.private_key") == 0 ||
               d.message.find("network.mode 'user' gives every VM") == 0));
    }
    REQUIRE(result.ok());
    const auto& spec = *result.spec;
    REQUIRE(spec.network.forwards.size() == 3);
    CHECK(spec.network.forwards[0].guest == 22); // labctl's, first
    CHECK(spec.network.forwards[0].host == 2222);
    CHECK(spec.network.forwards[1].guest == 3000);
    CHECK(spec.network.forwards[1].host == 13000);
    CHECK(spec.network.forwards[1].where.line == 7);
    REQUIRE(spec.vms.size() == 2);
    CHECK(spec.vms[0].ip == "10.0.2.15");
    CHECK(spec.vms[1].ip == "10.0.2.15"); // each VM has its own SLIRP network
    CHECK(spec.vms[0].host_port(9090) == 19090);
    CHECK(spec.vms[1].host_port(9090) == 19091);
    CHECK(spec.vms[1].host_port(22) == 2223);
    CHECK_FALSE(spec.vms[0].host_port(80));
    CHECK(spec.ssh_address(spec.vms[1]).host == "127.0.0.1");
    CHECK(spec.ssh_address(spec.vms[1]).port == 2223);
    CHECK_FALSE(spec.service_address(spec.vms[0], 80));
    CHECK(spec.image.kernel == (good_dir() / "images/vmlinuz").lexically_normal().string());
    CHECK(spec.image.initrd == (good_dir() / "images/initrd.img").lexically_normal().string());
    CHECK(spec.image.cmdline == "root=/dev/vda rw console=ttyS0");
    CHECK(spec.image.direct_kernel_boot());
    CHECK_FALSE(spec.image.labctl_built());
}

TEST_CASE("image.build is parsed into the spec, nat VMs are reached at their own address",
          "[config][good][user]") {
    const auto spec = load_good("image_build.yaml");
    REQUIRE(spec.image.build);
    CHECK(spec.image.labctl_built());
    CHECK(spec.image.build->suite == "bookworm");
    CHECK(spec.image.build->packages == std::vector<std::string>{"htop", "curl"});
    CHECK(spec.image.path.empty());
    CHECK(spec.image.kernel.empty());
    CHECK(spec.vms[0].host_port(22) == 2222);

    const auto nat = load_good("minimal.yaml");
    CHECK(nat.network.forwards.empty());
    CHECK(nat.vms[0].forwards.empty());
    CHECK(nat.ssh_address(nat.vms[0]).host == nat.vms[0].ip);
    CHECK(nat.ssh_address(nat.vms[0]).port == 22);
}
