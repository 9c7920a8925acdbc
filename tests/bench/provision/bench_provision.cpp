// Wall time of `provision` + `down` for 1, 8 and 32 VMs on libvirt's test:///default driver,
// sequential and --parallel 8, in one process (the test driver keeps its state only for the life
// of a connection). Prints labctl's overhead per VM. Usage: bench_provision [repeats=3]

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include <labctl/config/loader.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/log.hpp>
#include <labctl/core/process.hpp>
#include <labctl/provision/provision.hpp>

using namespace labctl;
namespace fs = std::filesystem;

namespace {

// A qcow2 header declaring a 1 GiB disk: the test driver stores no contents.
std::string qcow2_header() {
    std::string h(512, '\0');
    h[0] = 'Q';
    h[1] = 'F';
    h[2] = 'I';
    h[3] = static_cast<char>(0xfb);
    h[7] = 3;
    const std::uint64_t size = 1ULL << 30;
    for (int i = 0; i < 8; ++i)
        h[static_cast<std::size_t>(24 + i)] = static_cast<char>((size >> (8 * (7 - i))) & 0xff);
    return h;
}

config::LabSpec make_spec(const fs::path& dir, int vms) {
    std::string yaml = "version: 1\nproject: bench\nlibvirt:\n  uri: test:///default\n"
                       "  pool: default-pool\n  domain_type: qemu\nnetwork:\n  cidr: 10.66.0.0/20\n"
                       "image:\n  path: base.qcow2\nvms:\n";
    for (int i = 1; i <= vms; ++i)
        yaml += fmt::format("  - name: vm{}\n    memory: 1GiB\n    disk: 2GiB\n", i);
    std::ofstream(dir / "lab.yaml") << yaml;
    config::LoadOptions o;
    o.path = (dir / "lab.yaml").string();
    auto r = config::load_lab(o);
    if (!r.ok())
        throw Error(ExitCode::internal, config::format(r.diagnostics.front()));
    return *r.spec;
}

double run_once(const config::LabSpec& spec, int parallel) {
    auto session = provision::LibvirtSession::open(spec.libvirt.uri);
    provision::ProvisionOptions o;
    o.parallel = parallel;
    const auto t0 = std::chrono::steady_clock::now();
    provision::provision(spec, session, o);
    provision::down(spec, session, {});
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace

int main(int argc, char** argv) {
    const int repeats = argc > 1 ? std::max(1, std::atoi(argv[1])) : 3;
    log::configure({.level = log::Level::warn});
    std::random_device rd;
    const fs::path dir = fs::temp_directory_path() / fmt::format("labctl-bench-{}", rd());
    fs::create_directories(dir / ".labctl");
    std::ofstream(dir / "base.qcow2", std::ios::binary) << qcow2_header();
    if (!run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                      (dir / ".labctl" / "id_ed25519").string()})
             .ok()) {
        std::fprintf(stderr, "ssh-keygen failed\n");
        return 1;
    }
    std::printf("provision + down on test:///default, best of %d (host keys cached after the "
                "first run)\n",
                repeats);
    std::printf("%5s  %14s  %14s  %18s\n", "VMs", "sequential", "--parallel 8", "per VM (seq/par)");
    for (int vms : {1, 8, 32}) {
        const auto spec = make_spec(dir, vms);
        double best_seq = 1e9, best_par = 1e9;
        for (int i = 0; i < repeats; ++i) {
            best_seq = std::min(best_seq, run_once(spec, 1));
            best_par = std::min(best_par, run_once(spec, 8));
        }
        std::printf("%5d  %12.3f s  %12.3f s  %7.1f / %5.1f ms\n", vms, best_seq, best_par,
                    1000.0 * best_seq / vms, 1000.0 * best_par / vms);
    }
    fs::remove_all(dir);
    return 0;
}
