// `labctl plan` against libvirt's test driver: one fixture per state of the host
// (tests/fixtures/libvirt/), outputs, exit codes and the JSON schema.

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>

#include <labctl/config/ipv4.hpp>
#include <labctl/config/loader.hpp>
#include <labctl/core/process.hpp>
#include <labctl/provision/host.hpp>
#include <labctl/provision/naming.hpp>

#include "skip.hpp"
#include "support.hpp"

using namespace labctl;
using labctl::test::fixture;
using labctl::test::read_file;
using labctl::test::run_labctl;
using labctl::test::TempDir;

namespace {

using labctl::test::contains;

struct LabOptions {
    std::string uri = "test:///default";
    int cpus = 2;
    int ssh_port = 22; ///< written only when not 22
    std::string network_mode = "nat";
    std::string cidr = "10.66.77.0/24";
    std::string pool_path;
};

/// The test lab: project "lab", one VM "lab1" (2 vCPU, 2 GiB, 20 GiB, 10.66.77.10) on lab-net.
std::string lab_yaml(const LabOptions& o) {
    std::string y = fmt::format(R"(version: 1
project: lab
libvirt:
  uri: {}
  pool: default
)",
                                o.uri);
    if (!o.pool_path.empty())
        y += fmt::format("  pool_path: {}\n", o.pool_path);
    y += fmt::format(R"(network:
  name: lab-net
  mode: {}
  cidr: {}
image:
  url: https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-genericcloud-amd64.qcow2
  sha256: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
vms:
  - name: lab1
    cpus: {}
    memory: 2GiB
    disk: 20GiB
)",
                     o.network_mode, o.cidr, o.cpus);
    if (o.ssh_port != 22)
        y += fmt::format("ssh:\n  port: {}\n", o.ssh_port);
    return y;
}

/// A lab directory with lab.yaml pointing at a copy of a libvirt fixture whose placeholders are
/// filled from the lab's spec (see tests/fixtures/libvirt/README.md).
class Lab {
public:
    explicit Lab(const std::string& state, LabOptions options = {}) {
        // The fixture's hashes describe the lab as written by default (cpus 2), whatever the
        // options then change: so that a test can plan a changed spec against the old state.
        LabOptions as_created;
        as_created.pool_path = options.pool_path;
        const auto created_spec = load(lab_yaml(as_created));
        if (!state.empty()) {
            std::string text = read_file(fixture("libvirt/" + state));
            REQUIRE_FALSE(text.empty());
            text = fill(text, created_spec);
            options.uri = "test://" + m_dir.write("libvirt/" + state, text).string();
        }
        m_file = m_dir.write("lab.yaml", lab_yaml(options)).string();
    }

    const std::string& file() const { return m_file; }
    const TempDir& dir() const { return m_dir; }

    ProcessResult plan(std::vector<std::string> args = {}) const {
        std::vector<std::string> argv{"plan", "-f", m_file};
        argv.insert(argv.end(), args.begin(), args.end());
        return run_labctl(argv);
    }

private:
    config::LabSpec load(const std::string& yaml) const {
        const auto path = m_dir.write("as-created.yaml", yaml);
        config::LoadOptions opts;
        opts.path = path.string();
        const auto result = config::load_lab(opts);
        REQUIRE(result.ok());
        return *result.spec;
    }

    static std::string fill(std::string text, const config::LabSpec& spec) {
        const std::regex placeholder(R"(\{\{(hash|mac):([a-z0-9-]+)\}\})");
        std::string out;
        auto it = std::sregex_iterator(text.begin(), text.end(), placeholder);
        std::size_t last = 0;
        for (; it != std::sregex_iterator(); ++it) {
            const auto& m = *it;
            out += text.substr(last, static_cast<std::size_t>(m.position()) - last);
            const std::string vm = m[2];
            if (m[1] == "mac") {
                out += provision::deterministic_mac(spec.project, vm);
            } else if (const auto* v = spec.find_vm(vm)) {
                out += provision::vm_spec_hash(spec, *v);
            } else {
                out += std::string(64, 'f'); // a VM the spec does not have
            }
            last = static_cast<std::size_t>(m.position() + m.length());
        }
        return out + text.substr(last);
    }

    TempDir m_dir;
    std::string m_file;
};

/// The table row of a resource: "ACTION KIND NAME" with any padding.
bool has_row(const std::string& out, const std::string& action, const std::string& kind,
             const std::string& name) {
    const std::regex row("(^|\n)" + action + " +" + kind + " +" +
                         std::regex_replace(name, std::regex(R"([.])"), R"(\.)") + "( |\n)");
    return std::regex_search(out, row);
}

} // namespace

TEST_CASE("plan against an empty host lists every object to create", "[plan]") {
    const Lab lab("empty.xml", {.pool_path = "/var/lib/libvirt/images/lab"});
    const auto r = lab.plan();
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(has_row(r.out, "create", "network", "lab-net"));
    CHECK(has_row(r.out, "create", "pool", "default"));
    CHECK(has_row(r.out, "create", "volume", "debian-12-genericcloud-amd64.qcow2"));
    CHECK(has_row(r.out, "create", "dhcp-host", "lab1"));
    CHECK(has_row(r.out, "create", "volume", "lab-lab1.qcow2"));
    CHECK(has_row(r.out, "create", "volume", "lab-lab1-seed.iso"));
    CHECK(has_row(r.out, "create", "domain", "lab-lab1"));
    CHECK(contains(r.out, "ACTION"));
    CHECK(contains(r.out, "DETAIL"));
    CHECK(contains(r.out, provision::deterministic_mac("lab", "lab1") + " -> 10.66.77.10"));
    CHECK(contains(r.out,
                   "\nPlan: 7 to create, 0 to keep, 0 to update, 0 to replace, 0 to delete.\n"));
}

TEST_CASE("plan with an existing pool keeps it and creates the rest", "[plan]") {
    const Lab lab("pool_only.xml");
    const auto r = lab.plan();
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(has_row(r.out, "keep", "pool", "default"));
    CHECK(contains(r.out, "dir pool at /var/lib/libvirt/images, 100 GiB free"));
    CHECK(contains(r.out, "Plan: 6 to create, 1 to keep, 0 to update, 0 to replace, 0 to delete."));
}

TEST_CASE("plan --detailed-exitcode exits 10 when there are changes", "[plan]") {
    const Lab lab("pool_only.xml");
    const auto r = lab.plan({"--detailed-exitcode"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 10);
    CHECK(contains(r.out, "Plan: 6 to create"));
    CHECK_FALSE(contains(r.err, "error"));
}

TEST_CASE("plan keeps everything that exists with matching labctl metadata", "[plan]") {
    const Lab lab("existing.xml");
    const auto r = lab.plan({"--detailed-exitcode"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(has_row(r.out, "keep", "network", "lab-net"));
    CHECK(has_row(r.out, "keep", "pool", "default"));
    CHECK(has_row(r.out, "keep", "volume", "debian-12-genericcloud-amd64.qcow2"));
    CHECK(has_row(r.out, "keep", "dhcp-host", "lab1"));
    CHECK(has_row(r.out, "keep", "volume", "lab-lab1.qcow2"));
    CHECK(has_row(r.out, "keep", "volume", "lab-lab1-seed.iso"));
    CHECK(has_row(r.out, "keep", "domain", "lab-lab1"));
    CHECK(contains(r.out, "Plan: 0 to create, 7 to keep, 0 to update, 0 to replace, 0 to delete."));
}

TEST_CASE("plan updates a domain whose cpus changed in place, keeping its disk and seed, also "
          "when it was made before labctl recorded its sizes",
          "[plan]") {
    // The fixture's metadata has no sizes: its <vcpu>, <memory> and the disk's capacity count.
    const Lab lab("existing.xml", {.cpus = 4});
    const auto r = lab.plan({"--detailed-exitcode"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 10);
    CHECK(has_row(r.out, "update", "domain", "lab-lab1"));
    CHECK(has_row(r.out, "keep", "volume", "lab-lab1-seed.iso"));
    CHECK(has_row(r.out, "keep", "volume", "lab-lab1.qcow2"));
    CHECK(contains(r.out, "2 -> 4 vCPU: redefined, then restarted (it is running); its disk is "
                          "kept"));
    CHECK(contains(r.out, "Plan: 0 to create, 6 to keep, 1 to update, 0 to replace, 0 to delete."));
}

TEST_CASE("provision asks before a restart: refused without a terminal to ask on (exit 2, "
          "nothing changed), applied with --yes",
          "[plan]") {
    const Lab lab("existing.xml", {.cpus = 4});
    const auto key = lab.dir().path() / ".labctl" / "id_ed25519";
    std::filesystem::create_directories(key.parent_path());
    REQUIRE(run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key.string()}).ok());
    auto r = run_labctl({"provision", "-f", lab.file()});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 2);
    CHECK(contains(r.err, "these changes restart a running VM or lose data, and there is no "
                          "terminal to ask on; nothing was changed:"));
    CHECK(contains(r.err, "update domain lab-lab1: "));
    CHECK(contains(r.err, "add --yes to apply them"));
    CHECK_FALSE(contains(r.err, "update domain lab-lab1: redefined"));

    // Each run reloads the test driver's state from the fixture: --yes applies the update to it.
    r = run_labctl({"provision", "--yes", "-f", lab.file()});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(has_row(r.out, "update", "domain", "lab-lab1"));
    CHECK(contains(r.out, "2 -> 4 vCPU: redefined, shut down to start with them"));
    CHECK(has_row(r.out, "start", "domain", "lab-lab1"));
}

TEST_CASE("on a terminal provision asks before a restart, and only yes applies it", "[plan]") {
    test::require_program("script");
    const Lab lab("existing.xml", {.cpus = 4});
    const auto key = lab.dir().path() / ".labctl" / "id_ed25519";
    std::filesystem::create_directories(key.parent_path());
    REQUIRE(run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key.string()}).ok());
    // script(1) gives labctl a pseudo-terminal and types the answer into it.
    const auto on_terminal = [&](const std::string& answer) {
        ProcessOptions o;
        o.stdin_data = answer;
        o.env = {{"NO_COLOR", "1"}, {"CI", ""}};
        o.timeout = std::chrono::seconds(60);
        return run_process(
            {"script", "-qec",
             fmt::format("{} provision -f {}", test::labctl_binary().string(), lab.file()),
             "/dev/null"},
            o);
    };
    auto r = on_terminal("n\n");
    INFO(r.out << r.err);
    CHECK(r.exit_code == 2);
    CHECK(contains(r.out, "These changes restart a running VM or lose data"));
    CHECK(contains(r.out, "Apply them? [y/N]"));
    CHECK(contains(r.out, "not applied: the answer was not yes; nothing was changed"));

    r = on_terminal("y\n");
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(contains(r.out, "2 -> 4 vCPU: redefined, shut down to start with them"));
}

TEST_CASE("plan replaces a domain whose spec changed otherwise, with its seed and its disk, whose "
          "data it says is lost",
          "[plan]") {
    const Lab lab("existing.xml", {.ssh_port = 2222});
    const auto r = lab.plan({"--detailed-exitcode"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 10);
    CHECK(has_row(r.out, "replace", "domain", "lab-lab1"));
    CHECK(has_row(r.out, "replace", "volume", "lab-lab1-seed.iso"));
    CHECK(has_row(r.out, "replace", "volume", "lab-lab1.qcow2"));
    CHECK(contains(r.out, "recreated with its replaced domain: the data on it is lost"));
    CHECK(contains(r.out, "spec changed (was "));
    CHECK(contains(r.out, "Plan: 0 to create, 4 to keep, 0 to update, 3 to replace, 0 to delete."));
}

TEST_CASE("plan deletes labctl domains of this project that left the spec", "[plan]") {
    const Lab lab("stale_domain.xml");
    const auto r = lab.plan({"--detailed-exitcode"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 10);
    CHECK(has_row(r.out, "delete", "domain", "lab-old"));
    CHECK(has_row(r.out, "delete", "volume", "lab-old.qcow2"));
    CHECK(has_row(r.out, "delete", "volume", "lab-old-seed.iso"));
    CHECK(has_row(r.out, "delete", "dhcp-host", "old"));
    CHECK(contains(r.out, "VM 'old' is no longer in lab.yaml"));
    CHECK(contains(r.out, "Plan: 0 to create, 7 to keep, 0 to update, 0 to replace, 4 to delete."));
}

TEST_CASE("plan refuses a domain of the same name that labctl did not create", "[plan]") {
    const Lab lab("foreign_domain.xml");
    const auto r = lab.plan();
    INFO(r.out << r.err);
    CHECK(r.exit_code == 3);
    CHECK(contains(r.err, "labctl: error: domain 'lab-lab1' exists but was not created by labctl"));
    CHECK(contains(r.err, "\nhint: "));
    CHECK(r.out.empty());
}

TEST_CASE("plan refuses a domain of the same name that belongs to another labctl project",
          "[plan]") {
    const Lab lab("other_project_domain.xml");
    const auto r = lab.plan();
    INFO(r.out << r.err);
    CHECK(r.exit_code == 3);
    CHECK(contains(r.err, "domain 'lab-lab1' belongs to labctl project 'lab-lab'"));
}

TEST_CASE("plan refuses a CIDR that collides with another libvirt network", "[plan]") {
    const Lab lab("cidr_collision.xml");
    const auto r = lab.plan();
    INFO(r.out << r.err);
    CHECK(r.exit_code == 3);
    CHECK(contains(r.err, "labctl: error: network.cidr 10.66.77.0/24 collides with libvirt "
                          "network 'other' (10.66.0.0/16)"));
    CHECK(contains(r.err, "hint: "));
}

TEST_CASE("plan refuses a CIDR that collides with a host route", "[plan]") {
    // Uses a real route of this machine as the lab's range.
    std::optional<config::Ipv4Network> routed;
    for (const auto& route : provision::read_host_routes())
        if (route.destination.prefix >= 8 && route.destination.prefix <= 30)
            routed = route.destination;
    if (!routed)
        test::skip("this machine has no host route with a /8../30 prefix to collide with");
    const Lab lab("pool_only.xml", {.cidr = routed->to_string()});
    const auto r = lab.plan();
    INFO(r.out << r.err);
    CHECK(r.exit_code == 3);
    CHECK(contains(r.err, fmt::format("network.cidr {} collides with host route {}",
                                      routed->to_string(), routed->to_string())));
}

TEST_CASE("plan reports a network of the same name with another range as a conflict", "[plan]") {
    const Lab lab("network_conflict.xml");
    const auto r = lab.plan();
    INFO(r.out << r.err);
    CHECK(r.exit_code == 3);
    CHECK(contains(r.err, "network 'lab-net' exists with 10.99.0.0/24, but network.cidr is "
                          "10.66.77.0/24"));
    CHECK(contains(r.err, "hint: "));
}

TEST_CASE("plan keeps a network labctl did not create and says it is used as is", "[plan]") {
    const Lab lab("foreign_network.xml");
    const auto r = lab.plan();
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(has_row(r.out, "keep", "network", "lab-net"));
    CHECK(contains(r.out, "not created by labctl: used as is"));
}

TEST_CASE("plan refuses a missing pool that it cannot create", "[plan]") {
    const Lab lab("empty.xml");
    const auto r = lab.plan();
    INFO(r.out << r.err);
    CHECK(r.exit_code == 3);
    CHECK(contains(r.err, "labctl: error: storage pool 'default' does not exist"));
    CHECK(contains(r.err, "libvirt.pool_path"));
}

TEST_CASE("plan in user network mode plans no network and no DHCP reservations", "[plan]") {
    const Lab lab("pool_only.xml", {.network_mode = "user"});
    const auto r = lab.plan();
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK_FALSE(contains(r.out, "network  "));
    CHECK_FALSE(contains(r.out, "dhcp-host"));
    CHECK(contains(r.out, "user network (SLIRP)"));
    CHECK(contains(r.out, "Plan: 4 to create, 1 to keep, 0 to update, 0 to replace, 0 to delete."));
}

TEST_CASE("plan exits 3 with libvirt's message and a hint when libvirt is unreachable", "[plan]") {
    TempDir sock_dir;
    const std::string uri =
        fmt::format("qemu+unix:///system?socket={}/no-such.sock", sock_dir.path().string());
    const Lab lab("", {.uri = uri});
    const auto r = lab.plan();
    INFO(r.out << r.err);
    CHECK(r.exit_code == 3);
    CHECK(contains(r.err, "labctl: error: cannot connect to libvirt at " + uri +
                              ": Failed to connect socket"));
    CHECK(contains(r.err, "hint: start libvirtd"));
    CHECK(contains(r.err, "labctl plan --offline"));
    CHECK(r.out.empty());
    // libvirt's own error printing goes through our log, not straight to stderr.
    CHECK_FALSE(contains(r.err, "libvirt: XML-RPC error"));
}

TEST_CASE("plan --offline plans against an empty host and warns that it did", "[plan]") {
    TempDir sock_dir;
    const std::string uri =
        fmt::format("qemu+unix:///system?socket={}/no-such.sock", sock_dir.path().string());
    const Lab lab("", {.uri = uri});
    const auto r = lab.plan({"--offline", "--detailed-exitcode"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 10);
    CHECK(contains(r.err, "--offline: libvirt at " + uri + " was not contacted"));
    CHECK(contains(r.err, "storage pool 'default' must already exist"));
    CHECK(has_row(r.out, "create", "network", "lab-net"));
    CHECK(has_row(r.out, "keep", "pool", "default"));
    CHECK(contains(r.out, "Plan: 6 to create, 1 to keep, 0 to update, 0 to replace, 0 to delete."));
}

TEST_CASE("plan --output json has a stable schema", "[plan]") {
    const Lab lab("stale_domain.xml", {.cpus = 3});
    const auto r = lab.plan({"--output", "json"});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    const auto j = nlohmann::json::parse(r.out);
    CHECK(j.at("project") == "lab");
    CHECK(j.at("uri").get<std::string>().rfind("test:///", 0) == 0);
    CHECK(j.at("offline") == false);
    CHECK(j.at("changes") == true);
    CHECK(j.at("summary") ==
          nlohmann::json{{"create", 0}, {"keep", 6}, {"update", 1}, {"replace", 0}, {"delete", 4}});
    CHECK(j.at("warnings").is_array());
    const auto& resources = j.at("resources");
    REQUIRE(resources.size() == 11);
    for (const auto& item : resources) {
        CHECK(item.size() == 7);
        for (const char* key : {"action", "kind", "name", "vm", "detail"})
            CHECK(item.at(key).is_string());
        CHECK(item.at("restarts").is_boolean());
        CHECK(item.at("loses_data").is_boolean());
    }
    CHECK(resources[0] == nlohmann::json{{"action", "keep"},
                                         {"kind", "network"},
                                         {"name", "lab-net"},
                                         {"vm", ""},
                                         {"detail", resources[0].at("detail")},
                                         {"restarts", false},
                                         {"loses_data", false}});
    const auto updated = std::find_if(resources.begin(), resources.end(), [](const auto& i) {
        return i.at("kind") == "domain" && i.at("action") == "update";
    });
    REQUIRE(updated != resources.end());
    CHECK(updated->at("name") == "lab-lab1");
    CHECK(updated->at("vm") == "lab1");
    CHECK(updated->at("restarts") == true);
    const auto lost = std::find_if(resources.begin(), resources.end(),
                                   [](const auto& i) { return i.at("name") == "lab-old.qcow2"; });
    REQUIRE(lost != resources.end());
    CHECK(lost->at("loses_data") == true);
    CHECK(r.out.find("Plan:") == std::string::npos);
}

TEST_CASE("plan with an invalid lab file exits 2 before contacting libvirt", "[plan]") {
    TempDir dir;
    const auto file = dir.write("lab.yaml", "version: 1\nproject: lab\n");
    const auto r = run_labctl({"plan", "-f", file.string()});
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
}
