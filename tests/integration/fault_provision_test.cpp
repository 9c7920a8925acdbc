// Fault cases for provision (issue #20, "never hang, never truncate, never leak"), each against
// libvirt's test driver with a connection held for the test (the driver keeps a test:///<file>
// state only while one is open) and, where it matters, through the labctl binary too:
// - libvirt refusing an operation after preflight (a volume larger than the pool): exit 9 naming
//   the phase and the object, everything the run made rolled back, the hint saying so;
// - a truncated qcow2 base image, without image.sha256 (refused from its own metadata before a
//   volume exists) and with it (the digest mismatch, the volume rolled back);
// - a full disk under the VMs' host keys, the one local file the seed step writes (the seed ISO
//   itself is built in memory and streamed to the pool): the path and "No space left on device"
//   named, exit 3, no partial key, nothing left in libvirt;
// - a full image cache under `labctl image build` (what image.build runs before provision):
//   exit 3 naming the build directory and ENOSPC, no partial entry left to trust.
// Every case asserts its run time within a stated bound and that no child process is left.

#include <fmt/format.h>
#include <sys/mount.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>

#include <labctl/config/loader.hpp>
#include <labctl/core/encoding.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/process.hpp>
#include <labctl/core/scope_guard.hpp>
#include <labctl/image/build.hpp>
#include <labctl/provision/inventory.hpp>
#include <labctl/provision/provision.hpp>

#include "fault_support.hpp"
#include "skip.hpp"
#include "support.hpp"

using namespace labctl;
using namespace labctl::provision;
using namespace std::chrono_literals;
using labctl::test::fixture;
using labctl::test::qcow2_header;
using labctl::test::read_file;
using labctl::test::TempDir;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

struct LabOptions {
    int vms = 1;
    std::string disk = "20GiB";
    std::string image_yaml; ///< the image: mapping's lines; default: a stub qcow2 header
};

class Lab {
public:
    explicit Lab(const LabOptions& o = {}) {
        m_uri = "test://" +
                m_dir.write("node.xml", read_file(fixture("libvirt/pool_only.xml"))).string();
        m_dir.write("images/base.qcow2", qcow2_header(2ULL << 30));
        const auto key = m_dir.path() / ".labctl" / "id_ed25519";
        fs::create_directories(key.parent_path());
        REQUIRE(
            run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key.string()}).ok());
        std::string yaml =
            fmt::format(R"(version: 1
project: fault
libvirt:
  uri: {}
  pool: default
  domain_type: qemu
network:
  name: fault-net
  cidr: 10.66.79.0/24
image:
{}
vms:
)",
                        m_uri, o.image_yaml.empty() ? "  path: images/base.qcow2" : o.image_yaml);
        for (int i = 1; i <= o.vms; ++i)
            yaml += fmt::format("  - name: vm{}\n    memory: 1GiB\n    disk: {}\n", i,
                                i == o.vms ? o.disk : std::string("20GiB"));
        m_file = m_dir.write("lab.yaml", yaml).string();
        config::LoadOptions opts;
        opts.path = m_file;
        const auto result = config::load_lab(opts);
        for (const auto& d : result.diagnostics)
            INFO(config::format(d));
        REQUIRE(result.ok());
        spec = *result.spec;
    }

    LibvirtSession open() const { return LibvirtSession::open(spec.libvirt.uri); }
    const TempDir& dir() const { return m_dir; }
    const std::string& file() const { return m_file; }

    config::LabSpec spec;

private:
    TempDir m_dir;
    std::string m_uri;
    std::string m_file;
};

std::set<std::string> names(const Inventory& inv) {
    std::set<std::string> out;
    for (const auto& n : inv.networks)
        out.insert("network:" + n.name);
    for (const auto& p : inv.pools)
        for (const auto& v : p.volumes)
            out.insert("volume:" + v.name);
    for (const auto& d : inv.domains)
        out.insert("domain:" + d.name);
    return out;
}

struct Failure {
    int code = 0;
    std::string message;
    std::string hint;
    std::chrono::milliseconds took{0};
};

Failure provision_failure(const Lab& lab, LibvirtSession& session) {
    Failure f;
    const auto t0 = Clock::now();
    try {
        provision::provision(lab.spec, session);
    } catch (const Error& e) {
        f.code = to_int(e.code());
        f.message = e.what();
        f.hint = e.hint();
    }
    f.took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
    INFO(f.message << "\nhint: " << f.hint);
    return f;
}

using labctl::test::contains;

/// Real qcow2 images made by qemu-img from `mib` MiB of random data, plain and compressed.
fs::path make_qcow2(const TempDir& dir, const std::string& name, int mib, bool compressed) {
    test::require_program("qemu-img");
    std::string data(static_cast<std::size_t>(mib) << 20, '\0');
    std::mt19937_64 rng(42);
    for (std::size_t i = 0; i + 8 <= data.size(); i += 8) {
        const auto v = rng();
        std::memcpy(&data[i], &v, 8);
    }
    const auto raw = dir.write(name + ".raw", data);
    const auto out = dir.path() / "images" / (name + ".qcow2");
    std::vector<std::string> argv{"qemu-img", "convert", "-f", "raw", "-O", "qcow2"};
    if (compressed)
        argv.push_back("-c");
    argv.push_back(raw.string());
    argv.push_back(out.string());
    ProcessOptions po;
    po.timeout = 60s;
    const auto r = run_process(argv, po);
    INFO(r.err);
    REQUIRE(r.ok());
    fs::remove(raw);
    return out;
}

/// The test's own tmpfs of `bytes` at `dir`, filled to the last byte; unmounted by the guard.
class FullTmpfs {
public:
    FullTmpfs(const fs::path& dir, std::size_t bytes) : m_dir(dir) {
        if (::geteuid() != 0)
            test::skip("mounting a tmpfs needs root");
        fs::create_directories(dir);
        const std::string opts = fmt::format("size={},mode=0700", bytes);
        REQUIRE(::mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) == 0);
        m_mounted = true;
        std::ofstream fill(dir / "filler", std::ios::binary);
        const std::string block(4096, 'x');
        for (std::size_t i = 0; i < bytes / 4096 + 16 && fill; ++i)
            fill.write(block.data(), static_cast<std::streamsize>(block.size()));
        fill.close();
        REQUIRE(fs::space(dir).available == 0);
    }
    ~FullTmpfs() {
        if (m_mounted)
            ::umount2(m_dir.c_str(), MNT_DETACH);
    }
    FullTmpfs(const FullTmpfs&) = delete;
    FullTmpfs& operator=(const FullTmpfs&) = delete;

private:
    fs::path m_dir;
    bool m_mounted = false;
};

} // namespace

TEST_CASE("libvirt refusing a volume mid-run is exit 9 naming the phase and the volume, with "
          "everything the run made rolled back",
          "[fault][provision]") {
    // The test driver's pools hold 100 GiB: vm2's 200 GiB overlay is refused after the network,
    // the base image volume and all of vm1 (DHCP host, overlay, seed, domain, started) exist.
    Lab lab({.vms = 2, .disk = "200GiB"});
    auto session = lab.open();
    const auto before = names(session.inventory());
    const auto f = provision_failure(lab, session);
    CHECK(f.code == 9);
    CHECK(contains(f.message, "provision: creating volume 'fault-vm2.qcow2' in pool 'default' "
                              "failed: "));
    CHECK(contains(f.message, "space"));
    CHECK(contains(f.hint, "rolled back what this run made: "));
    CHECK(contains(f.hint, "domain 'fault-vm1'"));
    CHECK(contains(f.hint, "network 'fault-net'"));
    CHECK(f.took < 5s);
    CHECK(names(session.inventory()) == before);
    CHECK(session.inventory().find_network("fault-net") == nullptr);
    CHECK(test::children_of_self().empty());

    // The binary: the same exit code, message and hint on stderr (its own test:///<file>
    // connection; nothing outlives that process).
    const auto t0 = Clock::now();
    const auto r = test::run_labctl({"provision", "-f", lab.file()});
    INFO(r.err);
    CHECK(r.exit_code == 9);
    CHECK(contains(r.err, "labctl: error: provision: creating volume 'fault-vm2.qcow2'"));
    CHECK(contains(r.err, "hint: rolled back what this run made: "));
    CHECK(Clock::now() - t0 < 10s);
}

TEST_CASE("a truncated qcow2 base image without image.sha256 is refused from its own metadata "
          "before any volume exists",
          "[fault][provision]") {
    for (const bool compressed : {false, true}) {
        INFO((compressed ? "compressed" : "plain") << " qcow2");
        Lab lab({.image_yaml = "  path: images/cut.qcow2"});
        const auto image = make_qcow2(lab.dir(), "cut", 4, compressed);
        // The complete image is accepted (the check must not refuse a good file) ...
        {
            auto session = lab.open();
            ProvisionOptions opts;
            opts.wait = false;
            REQUIRE_NOTHROW(provision::provision(lab.spec, session, opts));
        }
        // ... and cut to 60 % of its size it is refused.
        const auto full = fs::file_size(image);
        fs::resize_file(image, full * 6 / 10);
        auto session = lab.open();
        const auto before = names(session.inventory());
        const auto f = provision_failure(lab, session);
        CHECK(f.code == 2);
        CHECK(
            contains(f.message, fmt::format("image {} is truncated: its qcow2 ", image.string())));
        CHECK(contains(f.message, fmt::format("the file has only {} bytes", full * 6 / 10)));
        CHECK(contains(f.hint, "fetch the image again"));
        CHECK(f.took < 5s);
        CHECK(names(session.inventory()) == before);
        CHECK(test::children_of_self().empty());
    }
}

TEST_CASE("a truncated base image with image.sha256 fails the digest and leaves no volume",
          "[fault][provision]") {
    TempDir images;
    fs::create_directories(images.path() / "images");
    const auto image = make_qcow2(images, "good", 4, true);
    const std::string sha = sha256_file_hex(image.string());
    Lab lab({.image_yaml = fmt::format("  path: {}\n  sha256: {}", image.string(), sha)});
    const auto full = fs::file_size(image);
    fs::resize_file(image, full / 2);
    auto session = lab.open();
    const auto before = names(session.inventory());
    const auto f = provision_failure(lab, session);
    CHECK(f.code == 2);
    CHECK(contains(f.message, fmt::format("image {} has sha256 ", image.string())));
    CHECK(contains(f.message, fmt::format("but image.sha256 is {}", sha)));
    CHECK(f.took < 5s);
    CHECK(names(session.inventory()) == before);
    CHECK(test::children_of_self().empty());
}

TEST_CASE("a full disk under the VMs' host keys during the seed step names the path and ENOSPC, "
          "leaves no partial key and rolls libvirt back",
          "[fault][provision]") {
    Lab lab;
    const auto hostkeys = lab.dir().path() / ".labctl" / "hostkeys";
    const FullTmpfs full(hostkeys, 64 * 1024);
    auto session = lab.open();
    const auto before = names(session.inventory());
    const auto f = provision_failure(lab, session);
    CHECK(f.code == 3);
    CHECK(contains(f.message, (hostkeys / "vm1").string()));
    CHECK(contains(f.message, "No space left on device"));
    CHECK(contains(f.hint, "free space"));
    CHECK(f.took < 10s);
    std::error_code ec;
    CHECK_FALSE(fs::exists(hostkeys / "vm1" / "ssh_host_ed25519_key", ec));
    CHECK_FALSE(fs::exists(hostkeys / "vm1" / "ssh_host_ed25519_key.pub", ec));
    CHECK(names(session.inventory()) == before);
    CHECK(session.inventory().find_network("fault-net") == nullptr);
    CHECK(test::children_of_self().empty());
}

TEST_CASE("labctl image build into a full cache names the build directory and ENOSPC and leaves "
          "no partial image a later run would trust",
          "[fault][provision]") {
    test::require_program("mmdebstrap");
    TempDir dir;
    const auto mount_dir = dir.path() / "cache-fs";
    // 1 MiB: mmdebstrap's apt update into the build tree runs out of space at once.
    const FullTmpfs full(mount_dir, 1 << 20);
    fs::remove(mount_dir / "filler"); // a small, empty disk: the build itself fills it
    const auto cache = mount_dir / "images";
    const auto t0 = Clock::now();
    ProcessOptions po;
    po.timeout = 300s;
    // The network rule: the mirror is a loopback port nothing listens on. apt's update fails to
    // fetch from it, and still writes its caches into the build tree, which the full disk
    // refuses: the error this case is about.
    const auto mirror = fmt::format("http://127.0.0.1:{}/debian", test::free_port());
    const auto r =
        test::run_labctl({"image", "build", "--cache-dir", cache.string(), "--mirror", mirror}, po);
    const auto took = Clock::now() - t0;
    INFO(r.err);
    CHECK(r.exit_code == 3);
    CHECK(contains(r.err, fmt::format("(building in {}/.build-", cache.string())));
    CHECK(contains(r.err, "No space left on device"));
    CHECK(contains(r.err, fmt::format("hint: check that {} is reachable", mirror)));
    CHECK(took < 120s);
    // Only the entry's lock file is left: no build directory, no entry, nothing to trust.
    std::vector<std::string> left;
    for (const auto& e : fs::directory_iterator(cache))
        left.push_back(e.path().filename().string());
    INFO(fmt::format("left in the cache: {}", fmt::join(left, " ")));
    CHECK(left.size() == 1);
    CHECK((left.size() == 1 && left[0].rfind(".bookworm-", 0) == 0 && left[0].size() > 5 &&
           left[0].substr(left[0].size() - 5) == ".lock"));
    // A later run finds no cached image (it would build again, not trust a partial one).
    image::BuildOptions bo;
    bo.cache_dir = cache;
    CHECK_FALSE(image::find_cached(bo).has_value());
    CHECK(test::processes_matching(cache.string()).empty());
    CHECK(test::children_of_self().empty());
}

TEST_CASE("a file system error labctl cannot turn into its own (a symlink loop under the host "
          "keys) is exit 3 'file system: ...' naming the path, not a bug report, and rolls "
          "libvirt back",
          "[fault][provision]") {
    // The seed step asks whether the VM's host key exists with std::filesystem's throwing
    // overload; a loop in the path makes it throw filesystem_error (ELOOP) mid-run.
    Lab lab;
    const auto vm_dir = lab.dir().path() / ".labctl" / "hostkeys" / "vm1";
    fs::create_directories(vm_dir.parent_path());
    fs::create_symlink("vm1", vm_dir);
    const auto key = (vm_dir / "ssh_host_ed25519_key").string();

    // In process: what provision throws, and that the run's objects are gone.
    {
        auto session = lab.open();
        const auto before = names(session.inventory());
        std::string what;
        try {
            provision::provision(lab.spec, session);
        } catch (const fs::filesystem_error& e) {
            what = e.what();
        }
        INFO(what);
        CHECK(contains(what, "Too many levels of symbolic links"));
        CHECK(names(session.inventory()) == before);
    }

    // The binary: exit 3, labctl's one-line error naming the path, a hint, nothing of a bug.
    const auto t0 = Clock::now();
    const auto r = test::run_labctl({"provision", "-f", lab.file()});
    const auto took = Clock::now() - t0;
    INFO(r.err);
    CHECK(r.exit_code == 3);
    CHECK(contains(r.err,
                   "labctl: error: file system: " + key + ": Too many levels of symbolic links\n"));
    CHECK(contains(r.err, "hint: check the permissions of that path"));
    CHECK_FALSE(contains(r.err, "bug"));
    CHECK_FALSE(contains(r.err, "please report"));
    CHECK_FALSE(contains(r.err, "internal error"));
    CHECK(took < 10s);
    CHECK(test::children_of_self().empty());
}
