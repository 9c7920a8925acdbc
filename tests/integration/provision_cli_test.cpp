// `labctl provision`, `status`, `plan` and `down` through the CLI, run in-process
// (labctl::cli::run) against libvirt's test:///default: the test driver shares that state among
// the connections of one process while one stays open, so the test holds a session for the whole
// sequence. Another process would see a fresh test:///default, hence in-process.

#include <fmt/format.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include <labctl/cli/cli.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/process.hpp>
#include <labctl/provision/provision.hpp>

#include "support.hpp"

using namespace labctl;
using labctl::test::TempDir;

namespace {

struct CliResult {
    int code = 0;
    std::string out;
    std::string error;
};

/// Runs the CLI in this process with stdout captured (through a temporary file).
CliResult labctl_cli(std::vector<std::string> args) {
    args.insert(args.begin(), "labctl");
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    std::fflush(stdout);
    std::FILE* tmp = std::tmpfile();
    REQUIRE(tmp != nullptr);
    const int saved = dup(STDOUT_FILENO);
    dup2(fileno(tmp), STDOUT_FILENO);
    CliResult r;
    try {
        r.code = cli::run(static_cast<int>(argv.size()), argv.data());
    } catch (const Error& e) {
        r.code = to_int(e.code());
        r.error = e.what();
    }
    std::fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    std::rewind(tmp);
    char buf[4096];
    std::size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, tmp)) > 0)
        r.out.append(buf, n);
    std::fclose(tmp);
    return r;
}

std::string write_lab(const TempDir& dir, int vms) {
    std::string h(512, '\0');
    h[0] = 'Q';
    h[1] = 'F';
    h[2] = 'I';
    h[3] = static_cast<char>(0xfb);
    h[31] = 0x40; // a virtual size of 64 bytes is enough for the test driver
    dir.write("base.qcow2", h);
    const auto key = dir.path() / ".labctl" / "id_ed25519";
    std::filesystem::create_directories(key.parent_path());
    REQUIRE(run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key.string()}).ok());
    std::string yaml = R"(version: 1
project: clitest
libvirt:
  uri: test:///default
  pool: default-pool
  domain_type: auto
network:
  name: clitest-net
  cidr: 10.66.78.0/24
image:
  path: base.qcow2
vms:
)";
    for (int i = 1; i <= vms; ++i)
        yaml += fmt::format("  - name: vm{}\n    memory: 512MiB\n    disk: 5GiB\n", i);
    return dir.write("lab.yaml", yaml).string();
}

} // namespace

TEST_CASE("CLI in-process on test:///default: provision, status --output json, plan "
          "--detailed-exitcode 0, provision says no changes, down, down again is a no-op",
          "[cli]") {
    TempDir dir;
    const std::string file = write_lab(dir, 2);
    // Keeps test:///default's state alive across the CLI's own connections.
    auto holder = provision::LibvirtSession::open("test:///default");

    auto r = labctl_cli({"provision", "-f", file, "--parallel", "2"});
    INFO(r.error);
    REQUIRE(r.code == 0);
    CHECK(r.out.find("create  domain     clitest-vm1") != std::string::npos);
    CHECK(r.out.find("not waited for") != std::string::npos);

    r = labctl_cli({"status", "-f", file, "--output", "json"});
    REQUIRE(r.code == 0);
    const auto status = nlohmann::json::parse(r.out);
    REQUIRE(status["vms"].size() == 2);
    CHECK(status["vms"][0]["vm"] == "vm1");
    CHECK(status["vms"][0]["state"] == "running");
    CHECK(status["vms"][0]["address"] == "10.66.78.10");
    CHECK(status["vms"][1]["address"] == "10.66.78.11");
    CHECK(status["vms"][1]["spec"] == "current");

    r = labctl_cli({"plan", "-f", file, "--detailed-exitcode"});
    CHECK(r.code == 0);
    CHECK(r.out.find("0 to create") != std::string::npos);

    r = labctl_cli({"provision", "-f", file});
    CHECK(r.code == 0);
    CHECK(r.out.find("No changes: the lab is up to date.") != std::string::npos);

    r = labctl_cli({"down", "-f", file});
    CHECK(r.code == 0);
    CHECK(r.out.find("delete  network    clitest-net") != std::string::npos);
    // libvirt's own objects of test:///default are untouched.
    const auto inv = holder.inventory();
    CHECK(inv.find_domain("test") != nullptr);
    CHECK(inv.find_network("default") != nullptr);

    r = labctl_cli({"down", "-f", file});
    CHECK(r.code == 0);
    CHECK(r.out == "Nothing to remove.\n");

    r = labctl_cli({"plan", "-f", file, "--detailed-exitcode"});
    CHECK(r.code == 10);
}

TEST_CASE("CLI: provision on a CIDR that collides exits 3 naming the collision", "[cli]") {
    TempDir dir;
    std::string file = write_lab(dir, 1);
    std::string yaml = test::read_file(file);
    yaml.replace(yaml.find("10.66.78.0/24"), 13, "192.168.122.0/25"); // test:///default's network
    file = dir.write("lab.yaml", yaml).string();
    auto holder = provision::LibvirtSession::open("test:///default");
    const auto r = labctl_cli({"provision", "-f", file});
    CHECK(r.code == 3);
    CHECK(r.error.find("collides with libvirt network 'default' (192.168.122.0/24)") !=
          std::string::npos);
    CHECK(holder.inventory().find_network("clitest-net") == nullptr);
}
