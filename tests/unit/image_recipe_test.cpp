// The pure parts of `labctl image build`: the cache key, mirror detection, the kernel command line
// and the cloud-init settings baked into the image.

#include <algorithm>
#include <catch2/catch.hpp>

#include <labctl/core/error.hpp>
#include <labctl/image/recipe.hpp>

#include "support.hpp"

using namespace labctl::image;

namespace {

BuildOptions sample() {
    BuildOptions o;
    o.suite = "bookworm";
    o.mirror = "http://deb.debian.org/debian";
    o.cache_dir = "/var/cache/labctl/images";
    return o;
}

// The host's debian.sources on this kind of machine: the main mirror stanza (with a comment
// between fields) followed by the security one.
constexpr const char* k_debian_sources = R"(Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
)";

} // namespace

TEST_CASE("the inputs hash is stable for the same inputs", "[image]") {
    const auto a = inputs_hash(sample());
    CHECK(a.size() == 64);
    CHECK(a == inputs_hash(sample()));
    // The cache directory and --force say where and whether, not what: same key.
    auto o = sample();
    o.cache_dir = "/elsewhere";
    o.force = true;
    CHECK(inputs_hash(o) == a);
}

TEST_CASE("the inputs hash changes with every input", "[image]") {
    const auto base = inputs_hash(sample());
    auto suite = sample();
    suite.suite = "trixie";
    CHECK(inputs_hash(suite) != base);
    auto mirror = sample();
    mirror.mirror = "http://mirror.example/debian";
    CHECK(inputs_hash(mirror) != base);
    auto extra = sample();
    extra.extra_packages = {"htop"};
    CHECK(inputs_hash(extra) != base);
    auto two = sample();
    two.extra_packages = {"htop", "jq"};
    CHECK(inputs_hash(two) != inputs_hash(extra));
}

TEST_CASE("package order and duplicates do not change the inputs hash", "[image]") {
    auto a = sample();
    a.extra_packages = {"jq", "htop"};
    auto b = sample();
    b.extra_packages = {"htop", "jq", "htop", "sudo"}; // sudo is a base package already
    CHECK(inputs_hash(a) == inputs_hash(b));
}

TEST_CASE("the package set is the base set plus extras, sorted and unique", "[image]") {
    const auto base = base_packages();
    CHECK(std::is_sorted(base.begin(), base.end()));
    for (const std::string p :
         {"linux-image-cloud-amd64", "systemd-sysv", "cloud-init", "openssh-server",
          "qemu-guest-agent", "rsync", "sudo", "docker.io", "docker-compose", "ca-certificates",
          "iproute2", "e2fsprogs", "apparmor", "nftables", "fail2ban", "python3-systemd", "auditd",
          "lynis"}) {
        INFO(p);
        CHECK(std::find(base.begin(), base.end(), p) != base.end());
    }
    const auto all = package_set({"zsh", "curl", "zsh"});
    CHECK(all.size() == base.size() + 2);
    CHECK(std::is_sorted(all.begin(), all.end()));
    CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());
}

TEST_CASE("the mirror comes from the stanza that serves the suite", "[image]") {
    CHECK(mirror_from_deb822(k_debian_sources, "bookworm") == "http://deb.debian.org/debian");
    // Another release: the stanza with a plain release suite, never the security archive.
    CHECK(mirror_from_deb822(k_debian_sources, "trixie") == "http://deb.debian.org/debian");
}

TEST_CASE("mirror detection skips disabled, deb-src and security-only stanzas", "[image]") {
    const std::string text = "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n"
                             "\n"
                             "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\n"
                             "Enabled: no\n"
                             "\n"
                             "Types: deb\nURIs: http://security.example/debian-security\n"
                             "Suites: bookworm-security\n"
                             "\n"
                             "Types: deb deb-src\nURIs: https://mirror.example/debian\n"
                             " http://second.example/debian\nSuites: bookworm\n";
    CHECK(mirror_from_deb822(text, "bookworm") == "https://mirror.example/debian");
    CHECK_FALSE(mirror_from_deb822("Types: deb\nURIs: http://s.example/debian-security\n"
                                   "Suites: bookworm-security\n",
                                   "bookworm")
                    .has_value());
    CHECK_FALSE(mirror_from_deb822("", "bookworm").has_value());
}

TEST_CASE("mirror detection reads one-line sources.list entries", "[image]") {
    const std::string text =
        "# comment\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb http://security.debian.org/debian-security bookworm-security main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://ftp.example/debian bookworm "
        "main contrib\n";
    CHECK(mirror_from_sources_list(text, "bookworm") == "http://ftp.example/debian");
    CHECK_FALSE(mirror_from_sources_list("deb cdrom:[Debian]/ bookworm main\n", "bookworm"));
}

TEST_CASE("the host mirror falls back to deb.debian.org without sources", "[image]") {
    labctl::test::TempDir dir;
    CHECK(host_mirror("bookworm", dir.path()) == std::string(k_default_mirror));
    dir.write("sources.list.d/debian.sources", k_debian_sources);
    CHECK(host_mirror("bookworm", dir.path()) == "http://deb.debian.org/debian");
    labctl::test::TempDir legacy;
    legacy.write("sources.list", "deb http://old.example/debian bookworm main\n");
    CHECK(host_mirror("bookworm", legacy.path()) == "http://old.example/debian");
}

TEST_CASE("the kernel command line boots the unpartitioned virtio root", "[image]") {
    const auto c = kernel_cmdline();
    CHECK(c.rfind("root=/dev/vda ", 0) == 0);
    CHECK(c.find(" rw") != std::string::npos);
    CHECK(c.find("console=ttyS0") != std::string::npos);
    CHECK(c.find("net.ifnames=0") != std::string::npos);
}

TEST_CASE("cloud.cfg.d allows NoCloud only and no module that needs the network", "[image]") {
    const auto cfg = cloud_cfg();
    CHECK(cfg.find("datasource_list: [NoCloud]\n") != std::string::npos);
    CHECK(cfg.find("renderers: [networkd]") != std::string::npos);
    CHECK(cfg.find("package_update: false") != std::string::npos);
    CHECK(cfg.find("package_upgrade: false") != std::string::npos);
    // Module lists replace the packaged ones: these must not be in them.
    for (const std::string m :
         {"- package-update-upgrade-install", "- ntp", "- locale", "- growpart", "- apt-configure",
          "- snap", "- phone-home", "- ssh-import-id"}) {
        INFO(m);
        CHECK(cfg.find(m + "\n") == std::string::npos);
    }
    // ...and these must, or seeds that use them would silently do nothing.
    for (const std::string m : {"- users-groups", "- ssh", "- write-files", "- runcmd",
                                "- scripts-user", "- set_hostname", "- resizefs", "- bootcmd"}) {
        INFO(m);
        CHECK(cfg.find(m + "\n") != std::string::npos);
    }
    CHECK(cfg.find('\t') == std::string::npos); // YAML forbids tabs for indentation
}

TEST_CASE("the customisation masks timesyncd and enables networkd", "[image]") {
    const auto links = tree_links();
    auto target = [&links](const std::string& path) {
        for (const auto& l : links)
            if (l.path == path)
                return l.target;
        return std::string{};
    };
    CHECK(target("etc/systemd/system/systemd-timesyncd.service") == "/dev/null");
    CHECK(target("etc/systemd/system/multi-user.target.wants/systemd-networkd.service") ==
          "/lib/systemd/system/systemd-networkd.service");
    const auto files = tree_files();
    CHECK(std::any_of(files.begin(), files.end(), [](const TreeFile& f) {
        return f.path == "etc/cloud/cloud.cfg.d/90_labctl.cfg" && f.content == cloud_cfg();
    }));
    for (const auto& f : files) {
        INFO(f.path);
        CHECK(f.path.front() != '/'); // relative to the tree, never the host's /etc
    }
}

TEST_CASE("the default cache directory follows root, XDG and HOME", "[image]") {
    CHECK(default_cache_dir(true, {{"HOME", "/root"}}) == "/var/cache/labctl/images");
    CHECK(default_cache_dir(false, {{"XDG_CACHE_HOME", "/x/cache"}, {"HOME", "/home/u"}}) ==
          "/x/cache/labctl/images");
    CHECK(default_cache_dir(false, {{"XDG_CACHE_HOME", "relative"}, {"HOME", "/home/u"}}) ==
          "/home/u/.cache/labctl/images");
    CHECK_THROWS_AS(default_cache_dir(false, {}), labctl::Error);
}

TEST_CASE("invalid suites, packages and mirrors are usage errors", "[image]") {
    auto check_usage = [](const BuildOptions& o) {
        try {
            validate(o);
            FAIL("no error");
        } catch (const labctl::Error& e) {
            CHECK(e.code() == labctl::ExitCode::usage);
            CHECK_FALSE(e.hint().empty());
        }
    };
    CHECK_NOTHROW(validate(sample()));
    auto o = sample();
    o.suite = "--help";
    check_usage(o);
    o = sample();
    o.suite = "../x";
    check_usage(o);
    o = sample();
    o.extra_packages = {"ok", "--allow-unauthenticated"};
    check_usage(o);
    o = sample();
    o.extra_packages = {"Bad Name"};
    check_usage(o);
    o = sample();
    o.mirror = "ftp://x/debian";
    check_usage(o);
    o = sample();
    o.mirror = "http://x/debian bookworm main";
    check_usage(o);
}

TEST_CASE("the cache entry name is the suite and a key prefix", "[image]") {
    const auto key = inputs_hash(sample());
    CHECK(cache_entry_name("bookworm", key) == "bookworm-" + key.substr(0, 16));
}
