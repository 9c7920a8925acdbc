// docker save archives without the layers a target has: chain ids and the tar filter, on archives
// GNU tar writes (ustar and PAX, as Go's archive/tar in docker save may).

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include <labctl/core/encoding.hpp>
#include <labctl/core/error.hpp>
#include <labctl/core/process.hpp>
#include <labctl/deploy/saved_archive.hpp>

#include "support.hpp"

using namespace labctl;

namespace {

const std::string k_d0 = "sha256:" + std::string(64, '0');
const std::string k_d1 = "sha256:" + std::string(64, '1');
const std::string k_d2 = "sha256:" + std::string(64, '2');

std::string chain2(const std::string& a, const std::string& b) {
    return "sha256:" + sha256_hex(a + " " + b);
}

/// A docker-save-shaped archive of two images sharing their first layer, written by GNU tar in
/// `format`; a layer directory with a name past ustar's 100 characters needs PAX or GNU headers.
std::string make_archive(const test::TempDir& dir, const std::string& format) {
    const auto long_dir = std::string(120, 'c');
    dir.write("in/aaa/VERSION", "1.0");
    dir.write("in/aaa/json", "{}");
    dir.write("in/aaa/layer.tar", std::string(5000, 'A'));
    dir.write("in/bbb/layer.tar", std::string(3000, 'B'));
    dir.write("in/" + long_dir + "/layer.tar", std::string(700, 'C'));
    dir.write("in/img1.json", nlohmann::json{{"rootfs", {{"diff_ids", {k_d0, k_d1}}}}}.dump());
    dir.write("in/img2.json", nlohmann::json{{"rootfs", {{"diff_ids", {k_d0, k_d2}}}}}.dump());
    dir.write("in/manifest.json",
              nlohmann::json::array({{{"Config", "img1.json"},
                                      {"RepoTags", {"a:1"}},
                                      {"Layers", {"aaa/layer.tar", "bbb/layer.tar"}}},
                                     {{"Config", "img2.json"},
                                      {"RepoTags", {"b:1"}},
                                      {"Layers", {"aaa/layer.tar", long_dir + "/layer.tar"}}}})
                  .dump());
    const auto out = (dir.path() / ("archive-" + format + ".tar")).string();
    // Top-level names without "./", as docker save writes them.
    const auto r = run_process({"sh", "-c", "cd \"$1\" && tar --format=\"$2\" -cf \"$3\" *", "sh",
                                (dir.path() / "in").string(), format, out});
    REQUIRE(r.ok());
    return out;
}

std::string read_all(deploy::SavedArchive& a) {
    std::string out;
    char buf[777]; // not a multiple of the block size
    for (std::size_t n; (n = a.read(buf, sizeof buf)) > 0;)
        out.append(buf, n);
    return out;
}

std::vector<std::string> listing(const test::TempDir& dir, const std::string& bytes) {
    const auto file = dir.write("filtered.tar", bytes);
    const auto r = run_process({"tar", "-tf", file.string()});
    REQUIRE(r.ok());
    std::vector<std::string> names;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);)
        names.push_back(line);
    return names;
}

} // namespace

TEST_CASE("chain ids follow the OCI definition for every prefix of each image's diff ids",
          "[deploy][preload]") {
    const auto chains = deploy::chain_ids({{k_d0, k_d1}, {k_d0, k_d2}});
    CHECK(chains == std::set<std::string>{k_d0, chain2(k_d0, k_d1), chain2(k_d0, k_d2)});
    // The same diff id on another base is another chain.
    CHECK_FALSE(deploy::chain_ids({{k_d1}}).count(chain2(k_d0, k_d1)));
    CHECK(deploy::parse_engine_chains(k_d0 + " " + k_d1 + " \n\n" + k_d2 + " \n") ==
          std::set<std::string>{k_d0, chain2(k_d0, k_d1), k_d2});
}

TEST_CASE("a saved archive without the layers the target has keeps every other entry intact",
          "[deploy][preload]") {
    for (const std::string format : {"pax", "gnu"}) {
        CAPTURE(format);
        test::TempDir dir;
        const auto path = make_archive(dir, format);
        {
            // Nothing the target has: the very same bytes.
            deploy::SavedArchive a(path);
            CHECK(a.omit_layers({}) == 0);
            CHECK(a.omitted() == 0);
            CHECK(read_all(a) == test::read_file(path));
        }
        // The target has the shared base (chain d0) and image 1's top: only image 2's top goes.
        deploy::SavedArchive a(path);
        CHECK(a.omit_layers({k_d0, chain2(k_d0, k_d1)}) == 2);
        const auto bytes = read_all(a);
        CHECK(bytes.size() == a.size());
        CHECK(a.size() + a.omitted() == std::filesystem::file_size(path));
        CHECK(a.omitted() >= 5000 + 3000);
        const auto names = listing(dir, bytes);
        const auto has = [&](const std::string& n) {
            return std::find(names.begin(), names.end(), n) != names.end();
        };
        CHECK_FALSE(has("aaa/layer.tar"));
        CHECK_FALSE(has("bbb/layer.tar"));
        CHECK(has("aaa/json"));
        CHECK(has("manifest.json"));
        CHECK(has(std::string(120, 'c') + "/layer.tar"));
        // What is kept extracts as it was.
        const auto out = dir.path() / "out";
        std::filesystem::create_directories(out);
        REQUIRE(
            run_process({"tar", "-C", out.string(), "-xf", (dir.path() / "filtered.tar").string()})
                .ok());
        CHECK(test::read_file(out / std::string(120, 'c') / "layer.tar") == std::string(700, 'C'));
        CHECK(test::read_file(out / "manifest.json") ==
              test::read_file(dir.path() / "in" / "manifest.json"));
    }
}

TEST_CASE("a file that is no docker save archive is a deploy error naming it",
          "[deploy][preload]") {
    test::TempDir dir;
    const auto plain = dir.write("plain.tar", std::string(2048, 'x')).string();
    try {
        deploy::SavedArchive a(plain);
        FAIL("accepted");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::deploy);
        CHECK_THAT(std::string(e.what()), Catch::Contains(plain));
    }
    // A tar without manifest.json.
    dir.write("in/x", "x");
    const auto tar = (dir.path() / "nomanifest.tar").string();
    REQUIRE(run_process({"sh", "-c", "cd \"$1\" && tar -cf \"$2\" x", "sh",
                         (dir.path() / "in").string(), tar})
                .ok());
    CHECK_THROWS_WITH(deploy::SavedArchive(tar), Catch::Contains("no manifest.json"));
}
