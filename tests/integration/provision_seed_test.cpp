// The cloud-init NoCloud seed labctl builds in-process with libisofs, read back with isoinfo
// (genisoimage) and, when Debian's cloud-init is installed, checked with `cloud-init schema`.

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include <labctl/config/loader.hpp>
#include <labctl/core/process.hpp>
#include <labctl/provision/naming.hpp>
#include <labctl/provision/seed.hpp>

#include "skip.hpp"
#include "support.hpp"

using namespace labctl;
using namespace labctl::provision;
using labctl::test::read_file;
using labctl::test::TempDir;

namespace {

config::LabSpec lab_spec(const TempDir& dir) {
    const auto file = dir.write("lab.yaml", R"(version: 1
project: lab
libvirt:
  uri: test:///default
network:
  name: lab-net
  cidr: 10.66.77.0/24
  domain: lab.example
ssh:
  user: alice
vms:
  - name: web
    ip: 10.66.77.10
)");
    config::LoadOptions opts;
    opts.path = file.string();
    const auto r = config::load_lab(opts);
    REQUIRE(r.ok());
    return *r.spec;
}

std::string isoinfo(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"isoinfo"};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto r = run_process(argv);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return r.out;
}

struct Seed {
    TempDir dir;
    config::LabSpec spec = lab_spec(dir);
    HostKey host_key = ensure_host_key(spec, spec.vms[0]);
    SeedFiles files =
        render_seed(spec, spec.vms[0], "ssh-ed25519 AAAAC3Nza-test alice@host", host_key);
    std::filesystem::path iso = dir.write("seed.iso", build_seed_iso(files));
};

} // namespace

TEST_CASE("seed ISO read back with isoinfo: volume id cidata, Rock Ridge + Joliet, the three "
          "files with exact content",
          "[seed]") {
    if (!find_program("isoinfo"))
        test::skip("isoinfo (genisoimage) is not installed");
    const Seed seed;
    const std::string info = isoinfo({"-d", "-i", seed.iso.string()});
    CHECK(info.find("Volume id: CIDATA") != std::string::npos);
    CHECK(info.find("Rock Ridge signatures version") != std::string::npos);
    CHECK(info.find("Joliet with UCS level") != std::string::npos);

    const std::string rr = isoinfo({"-R", "-f", "-i", seed.iso.string()});
    CHECK(rr.find("/user-data") != std::string::npos);
    CHECK(rr.find("/meta-data") != std::string::npos);
    CHECK(rr.find("/network-config") != std::string::npos);
    const std::string joliet = isoinfo({"-J", "-f", "-i", seed.iso.string()});
    CHECK(joliet.find("/network-config") != std::string::npos);

    CHECK(isoinfo({"-R", "-i", seed.iso.string(), "-x", "/user-data"}) == seed.files.user_data);
    CHECK(isoinfo({"-R", "-i", seed.iso.string(), "-x", "/meta-data"}) == seed.files.meta_data);
    CHECK(isoinfo({"-R", "-i", seed.iso.string(), "-x", "/network-config"}) ==
          seed.files.network_config);
}

TEST_CASE("seed content: locked user with the authorized key, no passwords, no root, the "
          "pre-generated host key, packages, instance-id from the spec hash",
          "[seed]") {
    const Seed seed;
    const std::string& u = seed.files.user_data;
    CHECK(u.rfind("#cloud-config\n", 0) == 0);
    CHECK(u.find("  - name: alice\n    lock_passwd: true\n") != std::string::npos);
    CHECK(u.find("      - ssh-ed25519 AAAAC3Nza-test alice@host\n") != std::string::npos);
    CHECK(u.find("\nssh_pwauth: false\n") != std::string::npos);
    CHECK(u.find("\ndisable_root: true\n") != std::string::npos);
    CHECK(u.find("  ed25519_public: " + seed.host_key.public_key + "\n") != std::string::npos);
    CHECK(u.find("    -----BEGIN OPENSSH PRIVATE KEY-----\n") != std::string::npos);
    CHECK(u.find("  - qemu-guest-agent\n  - rsync\n  - docker.io\n") != std::string::npos);
    CHECK(u.find("fqdn: web.lab.example\n") != std::string::npos);

    CHECK(seed.files.meta_data ==
          fmt::format("instance-id: labctl-{}\nlocal-hostname: web\n",
                      vm_spec_hash(seed.spec, seed.spec.vms[0]).substr(0, 16)));
    CHECK(seed.files.network_config.find(fmt::format(
              "macaddress: \"{}\"", deterministic_mac("lab", "web"))) != std::string::npos);

    // The key is generated once and reused, so a rebuilt seed keeps the pinned key.
    CHECK(ensure_host_key(seed.spec, seed.spec.vms[0]).public_key == seed.host_key.public_key);
}

TEST_CASE("cloud-init schema accepts the seed's user-data", "[seed]") {
    if (!find_program("cloud-init"))
        test::skip("cloud-init (Debian package cloud-init) is not installed");
    const Seed seed;
    const auto file = seed.dir.write("user-data", seed.files.user_data);
    const auto r = run_process({"cloud-init", "schema", "--config-file", file.string()});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("Valid cloud-config") != std::string::npos);
}
