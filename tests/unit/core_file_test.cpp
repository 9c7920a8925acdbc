#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <set>
#include <stdexcept>
#include <string>

#include <labctl/core/error.hpp>
#include <labctl/core/file.hpp>

#include "support.hpp"

namespace fs = std::filesystem;
using labctl::copy_file_atomic;
using labctl::Error;
using labctl::ExitCode;
using labctl::test::TempDir;

namespace {

/// The names in `dir`, to see that no temporary was left.
std::set<std::string> names_in(const fs::path& dir) {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(dir))
        out.insert(e.path().filename().string());
    return out;
}

unsigned mode_of(const fs::path& p) {
    struct stat st {};
    REQUIRE(::stat(p.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

/// Runs `f`, which must throw labctl::Error; returns it.
template <class F>
Error error_from(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        return e;
    }
    FAIL("no labctl::Error thrown");
    throw std::logic_error("unreachable");
}

} // namespace

TEST_CASE("copy_file_atomic copies the content and the source's permission bits", "[core][file]") {
    TempDir dir;
    std::string content;
    for (int i = 0; content.size() < 3 * 1024 * 1024 + 17; ++i) // several reads of its buffer
        content += static_cast<char>((i * 7919) % 251);
    const auto from = dir.write("from.bin", content);
    REQUIRE(::chmod(from.c_str(), 0751) == 0); // not what mkstemp (0600) or a umask gives
    const auto to = dir.path() / "to.bin";
    copy_file_atomic(from.string(), to.string());
    CHECK(labctl::test::read_file(to) == content);
    CHECK(mode_of(to) == 0751);
    CHECK(names_in(dir.path()) == std::set<std::string>{"from.bin", "to.bin"});
}

TEST_CASE("copy_file_atomic replaces an existing file", "[core][file]") {
    TempDir dir;
    const auto from = dir.write("from", "new content\n");
    REQUIRE(::chmod(from.c_str(), 0644) == 0);
    const auto to = dir.write("to", "the old content, longer than the new one\n");
    REQUIRE(::chmod(to.c_str(), 0600) == 0);
    copy_file_atomic(from.string(), to.string());
    CHECK(labctl::test::read_file(to) == "new content\n");
    CHECK(mode_of(to) == 0644);
    CHECK(names_in(dir.path()) == std::set<std::string>{"from", "to"});
}

TEST_CASE("copy_file_atomic that cannot rename into place leaves no temporary", "[core][file]") {
    TempDir dir;
    const auto from = dir.write("from", "content\n");
    const auto kept = dir.write("to/kept", "kept\n"); // `to` is a directory: rename(2) refuses
    const auto to = dir.path() / "to";
    const auto e = error_from([&] { copy_file_atomic(from.string(), to.string()); });
    CHECK(e.code() == ExitCode::preflight);
    CHECK_THAT(e.what(), Catch::Contains(to.string()) && Catch::Contains("Is a directory"));
    CHECK(names_in(dir.path()) == std::set<std::string>{"from", "to"});
    CHECK(labctl::test::read_file(kept) == "kept\n");
}

TEST_CASE("copy_file_atomic that fails to read mid-copy leaves no temporary", "[core][file]") {
    TempDir dir;
    // A regular file whose read(2) fails: offset 0 of this process's memory is not mapped (EIO).
    const std::string from = "/proc/self/mem";
    const auto to = dir.path() / "copy";
    const auto e = error_from([&] { copy_file_atomic(from, to.string()); });
    CHECK(e.code() == ExitCode::preflight);
    CHECK_THAT(e.what(), Catch::Contains("cannot read " + from + ": "));
    CHECK(names_in(dir.path()).empty());
}

TEST_CASE("copy_file_atomic names the missing source or target directory", "[core][file]") {
    TempDir dir;
    const auto from = dir.write("from", "content\n");
    auto e = error_from(
        [&] { copy_file_atomic((dir.path() / "absent").string(), (dir.path() / "to").string()); });
    CHECK_THAT(e.what(), Catch::Contains((dir.path() / "absent").string()) &&
                             Catch::Contains("No such file or directory"));
    const auto to = dir.path() / "no-such-dir" / "to";
    e = error_from([&] { copy_file_atomic(from.string(), to.string()); });
    CHECK(e.code() == ExitCode::preflight);
    CHECK_THAT(e.what(), Catch::Contains(to.string()) && Catch::Contains("No such file"));
    CHECK(names_in(dir.path()) == std::set<std::string>{"from"});
}

TEST_CASE("copy_file_atomic copies regular files only", "[core][file]") {
    TempDir dir;
    fs::create_directory(dir.path() / "sub");
    const auto e = error_from(
        [&] { copy_file_atomic((dir.path() / "sub").string(), (dir.path() / "to").string()); });
    CHECK_THAT(e.what(), Catch::Contains("not a regular file"));
    CHECK(names_in(dir.path()) == std::set<std::string>{"sub"});
}

TEST_CASE("read_file returns the whole content, bytes as they are", "[core][file]") {
    TempDir dir;
    std::string content(200 * 1024, 'x'); // more than one read
    content[7] = '\0';
    content += "\r\nend";
    const auto path = dir.write("data", content);
    CHECK(labctl::read_file(path.string()) == content);
    CHECK(labctl::read_file(dir.write("empty", "").string()).empty());
}

TEST_CASE("read_file names the path and errno's text", "[core][file]") {
    TempDir dir;
    const auto absent = (dir.path() / "absent").string();
    auto e = error_from([&] { labctl::read_file(absent); });
    CHECK(e.code() == ExitCode::usage);
    CHECK(std::string(e.what()) == "cannot read " + absent + ": No such file or directory");
    e = error_from([&] { labctl::read_file(dir.path().string()); });
    CHECK(std::string(e.what()) == "cannot read " + dir.path().string() + ": Is a directory");
}
