// deploy::sync for real: the system rsync over the system ssh, through an ssh config like the one
// labctl writes (pinned known_hosts, StrictHostKeyChecking yes), to a real sshd on loopback as a
// throwaway user with sudo. Each test case checks one promise of the sync.

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include <labctl/core/error.hpp>
#include <labctl/deploy/sync.hpp>

#include "skip.hpp"
#include "sshd.hpp"
#include "support.hpp"
#include "test_user.hpp"

using namespace labctl;
namespace fs = std::filesystem;

namespace {

struct SyncLab {
    test::TestUser user;
    test::SshServer sshd{{.listen_address = "127.0.0.4"}};
    test::TempDir dir;
    deploy::SyncOptions options;

    SyncLab() {
        test::require_program("rsync");
        // Remote directory with a space: the path must survive both the remote shell
        // (mkdir through --rsync-path) and rsync's own argument handling.
        const auto remote = dir.path() / "remote side" / "stack";
        dir.write(".labctl/ssh_config",
                  fmt::format("Host box\n    HostName {}\n    Port {}\n    User {}\n"
                              "    IdentityFile {}\n    IdentitiesOnly yes\n"
                              "    UserKnownHostsFile {}\n    StrictHostKeyChecking yes\n",
                              sshd.host(), sshd.port(), user.name(), sshd.client_key().string(),
                              sshd.known_hosts().string()));
        dir.write("stack/docker-compose.yml", "services: {}\n");
        dir.write("stack/www/index.html", "hello\n");
        dir.write("stack/www/app.js", "console.log('lab');\n");
        dir.write("stack/.git/HEAD", "ref: refs/heads/main\n");
        options.local_dir = (dir.path() / "stack").string();
        options.remote_dir = remote.string();
        options.ssh_config = (dir.path() / ".labctl" / "ssh_config").string();
        options.host_alias = "box";
        options.sudo = true;
    }
    fs::path local(const std::string& rel) const { return dir.path() / "stack" / rel; }
    fs::path remote(const std::string& rel) const { return fs::path(options.remote_dir) / rel; }
};

} // namespace

TEST_CASE("sync copies the tree the first time and sends nothing the second time", "[sync]") {
    SyncLab lab;
    const auto first = deploy::sync(lab.options);
    CHECK(first.files_transferred == 3);
    CHECK(first.bytes_sent > 0);
    CHECK(test::read_file(lab.remote("www/index.html")) == "hello\n");
    CHECK_FALSE(fs::exists(lab.remote(".git")));

    const auto second = deploy::sync(lab.options);
    CHECK(second.files_transferred == 0);
    CHECK(second.changes.empty());
}

TEST_CASE("sync of one changed file transfers exactly that file", "[sync]") {
    SyncLab lab;
    deploy::sync(lab.options);
    // Same size, same mtime second: only --checksum notices this change.
    const auto mtime = fs::last_write_time(lab.local("www/index.html"));
    lab.dir.write("stack/www/index.html", "HELLO\n");
    fs::last_write_time(lab.local("www/index.html"), mtime);
    const auto r = deploy::sync(lab.options);
    CHECK(r.files_transferred == 1);
    REQUIRE(r.changes.size() == 1);
    CHECK(r.changes[0].find("www/index.html") != std::string::npos);
    CHECK(test::read_file(lab.remote("www/index.html")) == "HELLO\n");
}

TEST_CASE("sync deletes a remote file that no longer exists locally", "[sync]") {
    SyncLab lab;
    deploy::sync(lab.options);
    fs::remove(lab.local("www/app.js"));
    const auto r = deploy::sync(lab.options);
    CHECK_FALSE(fs::exists(lab.remote("www/app.js")));
    CHECK(fs::exists(lab.remote("www/index.html")));
    REQUIRE(r.changes.size() == 1);
    CHECK(r.changes[0].find("*deleting") != std::string::npos);
}

TEST_CASE("sync keeps file names with spaces and unicode byte for byte", "[sync]") {
    SyncLab lab;
    const std::string name = "dashboards/Übersicht – SLI ✓ (copy).json";
    lab.dir.write("stack/" + name, "{\"title\": \"Übersicht\"}\n");
    lab.dir.write("stack/a file with  two spaces", "x\n");
    const auto r = deploy::sync(lab.options);
    CHECK(r.files_transferred == 5);
    CHECK(test::read_file(lab.remote(name)) == "{\"title\": \"Übersicht\"}\n");
    CHECK(fs::exists(lab.remote("a file with  two spaces")));
    CHECK(deploy::sync(lab.options).files_transferred == 0);
}

TEST_CASE("sync --dry-run reports the change and leaves the target alone", "[sync]") {
    SyncLab lab;
    deploy::sync(lab.options);
    lab.dir.write("stack/www/index.html", "changed\n");
    auto dry = lab.options;
    dry.dry_run = true;
    const auto r = deploy::sync(dry);
    CHECK(r.dry_run);
    REQUIRE(r.changes.size() == 1);
    CHECK(test::read_file(lab.remote("www/index.html")) == "hello\n");
}

TEST_CASE("sync to a host whose key is not the pinned one fails with rsync's reason", "[sync]") {
    SyncLab lab;
    std::ofstream(lab.sshd.known_hosts(), std::ios::trunc)
        << fmt::format("[{}]:{} ssh-ed25519 "
                       "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
                       lab.sshd.host(), lab.sshd.port());
    try {
        deploy::sync(lab.options);
        FAIL("synced to a host with the wrong key");
    } catch (const Error& e) {
        CHECK(e.code() == ExitCode::deploy);
        CHECK(std::string(e.what()).find("HOST IDENTIFICATION HAS CHANGED") != std::string::npos);
    }
    CHECK_FALSE(fs::exists(lab.options.remote_dir));
}
