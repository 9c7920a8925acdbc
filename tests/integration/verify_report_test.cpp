// labctl verify's reports on paths that cannot hold them: a --junit path that cannot be written
// fails before any check runs (exit 2, naming it); a disk that fills up while the report is
// written still leaves the results on stdout, and the exit is 2 naming the path. A real HTTP
// server (python3's http.server on 127.0.0.1) stands in for nginx, the only service asked.

#include <fmt/format.h>
#include <sys/mount.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <fstream>

#include "background.hpp"
#include "skip.hpp"
#include "support.hpp"

using namespace labctl;
using namespace std::chrono_literals;

namespace {

struct Lab {
    test::TempDir dir;
    int port = test::free_port();
    test::BackgroundProcess web{{"python3", "-m", "http.server", "--bind", "127.0.0.1",
                                 std::to_string(port), "--directory", dir.path().string()},
                                dir.path() / "http.log"};
    Lab() {
        dir.write("index.html", "ok\n");
        dir.write("lab.yaml", fmt::format(R"(version: 1
project: reports
vms:
  - name: lab1
verify:
  checks: [stack.health]
  services: [nginx]
  endpoints:
    nginx: http://127.0.0.1:{}
)",
                                          port));
        REQUIRE(test::wait_for_port(port, 10s));
    }
    std::string lab() const { return (dir.path() / "lab.yaml").string(); }
};

/// A 64 KiB tmpfs, filled to the last byte: any new file there fails with ENOSPC.
struct FullDisk {
    test::TempDir dir;
    FullDisk() {
        if (::geteuid() != 0)
            test::skip("mounting a tmpfs needs root");
        REQUIRE(::mount("tmpfs", dir.path().c_str(), "tmpfs", 0, "size=64k") == 0);
        std::ofstream fill(dir.path() / "fill", std::ios::binary);
        const std::string block(4096, 'x');
        while (fill.write(block.data(), block.size()))
            ;
    }
    ~FullDisk() { ::umount2(dir.path().c_str(), MNT_DETACH); }
};

} // namespace

TEST_CASE("verify --junit into a path that cannot be created fails before the checks, exit 2 "
          "naming it",
          "[verify][report]") {
    test::require_program("python3");
    Lab lab;
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = test::run_labctl(
        {"verify", "-f", lab.lab(), "--junit", "/proc/self/no/such/dir/verify.xml"});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("--junit /proc/self/no/such/dir/verify.xml: cannot write a report there") !=
          std::string::npos);
    CHECK(r.out.empty()); // no check ran
    CHECK(std::chrono::steady_clock::now() - t0 < 10s);
}

TEST_CASE("verify --junit on a full disk prints the results first, then exits 2 naming the "
          "report, and leaves no temporary file",
          "[verify][report]") {
    test::require_program("python3");
    Lab lab;
    FullDisk disk;
    const auto report = (disk.dir.path() / "verify.xml").string();
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = test::run_labctl({"verify", "-f", lab.lab(), "--junit", report});
    const auto took = std::chrono::steady_clock::now() - t0;
    INFO(r.err);
    CHECK(r.exit_code == 2);
    // Bounded: the one check passes on its first attempt, and the failed write ends the run
    // (nothing retries or waits for space).
    CHECK(took < 10s);
    CHECK(r.out.find("stack.health") != std::string::npos); // the results are not lost
    CHECK(r.out.find("PASS") != std::string::npos);
    CHECK(r.err.find("--junit " + report + ": the report was not written") != std::string::npos);
    CHECK(r.err.find("No space left on device") != std::string::npos);
    std::vector<std::string> left;
    for (const auto& e : std::filesystem::directory_iterator(disk.dir.path()))
        left.push_back(e.path().filename().string());
    CHECK(left == std::vector<std::string>{"fill"});
}
