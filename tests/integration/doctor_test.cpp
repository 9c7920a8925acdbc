// `labctl doctor` against libvirt's test driver: the table, JSON, exit codes, and the checks that
// run without a lab file.

#include <fmt/format.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>

#include "skip.hpp"
#include "support.hpp"

using namespace labctl;
using labctl::test::fixture;
using labctl::test::run_labctl;
using labctl::test::TempDir;

namespace {

using labctl::test::contains;

/// Skips unless the tools doctor requires are installed (scripts/install-deps installs them).
void require_tools() {
    for (const char* program : {"qemu-img", "rsync", "ssh", "ssh-keygen"})
        test::require_program(program);
}

std::string lab_yaml(const std::string& uri, const std::string& pool,
                     const std::string& extra_libvirt = {}) {
    return fmt::format(R"(version: 1
project: lab
libvirt:
  uri: {}
  pool: {}
  domain_type: auto
{}network:
  name: lab-net
  cidr: 10.66.77.0/24
vms:
  - name: lab1
    disk: 10GiB
)",
                       uri, pool, extra_libvirt);
}

/// The row of a check: "NAME STATUS" with any padding.
bool has_check(const std::string& out, const std::string& name, const std::string& status) {
    return std::regex_search(
        out, std::regex("(^|\n)" + std::regex_replace(name, std::regex(R"([.])"), R"(\.)") + " +" +
                        status + "( |\n)"));
}

ProcessResult doctor(const TempDir& dir, std::vector<std::string> args,
                     std::map<std::string, std::string> env = {}) {
    ProcessOptions opts;
    opts.cwd = dir.path().string();
    opts.env = std::move(env);
    std::vector<std::string> argv{"doctor"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_labctl(argv, opts);
}

void make_key(const TempDir& dir, unsigned mode) {
    const auto key = dir.write(".labctl/id_ed25519", "not a real key\n");
    dir.write(".labctl/id_ed25519.pub", "ssh-ed25519 AAAA test\n");
    REQUIRE(::chmod(key.c_str(), mode) == 0);
}

} // namespace

TEST_CASE("doctor against the test driver prints a table of every check and exits 0", "[doctor]") {
    require_tools();
    TempDir dir;
    dir.write("lab.yaml", lab_yaml("test:///default", "default-pool"));
    make_key(dir, 0600);
    const auto r = doctor(dir, {});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(contains(r.out, "CHECK"));
    CHECK(contains(r.out, "STATUS"));
    CHECK(contains(r.out, "DETAIL"));
    CHECK(has_check(r.out, "libvirt.uri", "ok"));
    CHECK(contains(r.out, "test:///default: TEST driver, libvirt "));
    CHECK(has_check(r.out, "libvirt.pool", "ok"));
    CHECK(has_check(r.out, "network.name", "ok"));
    CHECK(contains(r.out, "'lab-net' does not exist: it will be created"));
    CHECK(has_check(r.out, "network.cidr", "ok"));
    CHECK(has_check(r.out, "tools.qemu-img", "ok"));
    CHECK(has_check(r.out, "tools.rsync", "ok"));
    CHECK(has_check(r.out, "tools.ssh", "ok"));
    CHECK(has_check(r.out, "tools.ssh-keygen", "ok"));
    CHECK(has_check(r.out, "ssh.key", "ok"));
    CHECK(has_check(r.out, "disk.pool", "ok"));
    CHECK(contains(r.out, "100 GiB free at pool 'default-pool'"));
    CHECK(std::regex_search(r.out, std::regex("(^|\n)kvm +(ok|warn) ")));
    CHECK(contains(r.out, "\nDoctor: "));
}

TEST_CASE("doctor exits 3 when the storage pool is missing", "[doctor]") {
    TempDir dir;
    dir.write("lab.yaml", lab_yaml("test:///default", "default"));
    const auto r = doctor(dir, {});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 3);
    CHECK(has_check(r.out, "libvirt.pool", "fail"));
    CHECK(contains(r.out, "storage pool 'default' does not exist"));
    CHECK(contains(r.out, "Hints:\n"));
    CHECK(contains(r.out, "  libvirt.pool: create it"));
    CHECK(contains(r.err, "labctl: error: "));
    CHECK(contains(r.err, "libvirt.pool"));
}

TEST_CASE("doctor warns that a missing pool will be created when pool_path is set", "[doctor]") {
    require_tools();
    TempDir dir;
    dir.write("lab.yaml", lab_yaml("test:///default", "labpool",
                                   "  pool_path: " + (dir.path() / "pool").string() + "\n"));
    make_key(dir, 0600);
    const auto r = doctor(dir, {});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(has_check(r.out, "libvirt.pool", "warn"));
    CHECK(contains(r.out, "'labpool' does not exist: it will be created at"));
    CHECK(std::regex_search(r.out, std::regex("(^|\n)disk\\.pool +(ok|warn|fail) ")));
}

TEST_CASE("doctor warns about a missing SSH key and points at labctl init", "[doctor]") {
    require_tools();
    TempDir dir;
    dir.write("lab.yaml", lab_yaml("test:///default", "default-pool"));
    const auto r = doctor(dir, {});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(has_check(r.out, "ssh.key", "warn"));
    CHECK(contains(r.out, "ssh.key: run 'labctl init'"));
}

TEST_CASE("doctor fails the network check when another libvirt network overlaps the CIDR",
          "[doctor]") {
    TempDir dir;
    const std::string uri = "test://" + fixture("libvirt/cidr_collision.xml").string();
    dir.write("lab.yaml", lab_yaml(uri, "default"));
    const auto r = doctor(dir, {});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 3);
    CHECK(has_check(r.out, "network.cidr", "fail"));
    CHECK(contains(r.out, "collides with libvirt network 'other' (10.66.0.0/16)"));
    CHECK(contains(r.err, "network.cidr"));
}

TEST_CASE("doctor reports an unreachable libvirt as a failed required check", "[doctor]") {
    TempDir dir;
    const std::string uri =
        fmt::format("qemu+unix:///system?socket={}/no-such.sock", dir.path().string());
    dir.write("lab.yaml", lab_yaml(uri, "default"));
    const auto r = doctor(dir, {"--output", "json"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 3);
    const auto j = nlohmann::json::parse(r.out);
    CHECK(j.at("ok") == false);
    bool seen = false;
    for (const auto& c : j.at("checks")) {
        if (c.at("name") == "libvirt.uri") {
            seen = true;
            CHECK(c.at("status") == "fail");
            CHECK(c.at("required") == true);
            CHECK(contains(c.at("detail").get<std::string>(), "Failed to connect socket"));
            CHECK(contains(c.at("hint").get<std::string>(), "libvirtd"));
        }
        if (c.at("name") == "libvirt.pool" || c.at("name") == "network.name")
            CHECK(c.at("status") == "skip");
    }
    CHECK(seen);
}

TEST_CASE("doctor --output json lists every check with status, required, detail and hint",
          "[doctor]") {
    TempDir dir;
    dir.write("lab.yaml", lab_yaml("test:///default", "default"));
    const auto r = doctor(dir, {"--output", "json"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 3);
    const auto j = nlohmann::json::parse(r.out);
    CHECK(j.at("lab_file") == "lab.yaml");
    CHECK(j.at("uri") == "test:///default");
    CHECK(j.at("ok") == false);
    for (const char* key : {"ok", "warn", "fail", "skip"})
        CHECK(j.at("summary").at(key).is_number_unsigned());
    std::vector<std::string> names;
    for (const auto& c : j.at("checks")) {
        CHECK(c.size() == 5);
        CHECK(c.at("name").is_string());
        CHECK(c.at("detail").is_string());
        CHECK(c.at("hint").is_string());
        CHECK(c.at("required").is_boolean());
        const auto status = c.at("status").get<std::string>();
        CHECK((status == "ok" || status == "warn" || status == "fail" || status == "skip"));
        names.push_back(c.at("name"));
    }
    CHECK(names == std::vector<std::string>{"kvm", "libvirt.uri", "libvirt.pool", "network.name",
                                            "network.cidr", "tools.qemu-img", "tools.rsync",
                                            "tools.ssh", "tools.ssh-keygen", "ssh.key", "ssh.jump",
                                            "disk.pool", "disk.state"});
}

TEST_CASE("doctor works without a lab file and skips the lab checks", "[doctor]") {
    require_tools();
    TempDir dir; // no lab.yaml in it
    const auto r =
        doctor(dir, {}, {{"LABCTL_LIBVIRT_URI", "test:///default"}, {"LABCTL_FILE", ""}});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(has_check(r.out, "libvirt.uri", "ok"));
    for (const char* name : {"libvirt.pool", "network.name", "network.cidr", "ssh.key", "ssh.jump",
                             "disk.pool", "disk.state"})
        CHECK(has_check(r.out, name, "skip"));
    CHECK(contains(r.out, "no lab file"));
    CHECK(has_check(r.out, "tools.rsync", "ok"));
}

TEST_CASE("doctor with a named lab file that does not exist is a usage error", "[doctor]") {
    TempDir dir;
    const auto r = doctor(dir, {"-f", "missing.yaml"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 2);
}
