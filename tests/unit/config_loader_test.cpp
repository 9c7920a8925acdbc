// load_lab beyond the fixtures: precedence (default < file < environment < flags), diagnostics
// about the environment and flags, every problem at once, private key checks, the bundled
// example and the template 'labctl init' writes.

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>

#include <labctl/config/loader.hpp>
#include <labctl/core/templates.hpp>

#include "support.hpp"

using namespace std::chrono_literals;
using labctl::config::Diagnostic;
using labctl::config::format;
using labctl::config::LabSpec;
using labctl::config::load_lab;
using labctl::config::load_lab_text;
using labctl::config::LoadOptions;
using labctl::config::LoadResult;
using labctl::config::Severity;
using labctl::test::contains;
using labctl::test::TempDir;

namespace fs = std::filesystem;

namespace {

const std::string k_lab = R"(version: 1
project: filelab
libvirt:
  uri: qemu:///session
  pool: filepool
ssh:
  user: fileuser
deploy:
  project: fileproject
vms:
  - name: lab1
)";

std::vector<std::string> formatted(const LoadResult& r) {
    std::vector<std::string> out;
    for (const auto& d : r.diagnostics)
        out.push_back(format(d));
    return out;
}

std::vector<std::string> errors(const LoadResult& r) {
    std::vector<std::string> out;
    for (const auto& d : r.diagnostics)
        if (d.severity == Severity::error)
            out.push_back(format(d));
    return out;
}

LabSpec load_ok(const std::string& text, LoadOptions options = {}) {
    TempDir dir;
    options.path = dir.write("lab.yaml", text).string();
    const auto r = load_lab(options);
    INFO(labctl::config::format(r.diagnostics.empty() ? Diagnostic{} : r.diagnostics.front()));
    REQUIRE(r.ok());
    return *r.spec;
}

/// Writes a key pair into dir/.labctl with the private key's mode.
fs::path make_key(const TempDir& dir, mode_t mode, bool with_pub = true) {
    const auto key = dir.write(".labctl/id_ed25519", "-----BEGIN OPENSSH PRIVATE KEY-----\n");
    if (with_pub)
        dir.write(".labctl/id_ed25519.pub", "ssh-ed25519 AAAA test\n");
    REQUIRE(::chmod(key.c_str(), mode) == 0);
    return key;
}

std::vector<const Diagnostic*> key_diagnostics(const LoadResult& r) {
    std::vector<const Diagnostic*> out;
    for (const auto& d : r.diagnostics)
        if (d.message.rfind("ssh.private_key", 0) == 0)
            out.push_back(&d);
    return out;
}

} // namespace

TEST_CASE("precedence is default < file < environment < flags", "[config][precedence]") {
    SECTION("defaults apply where the file says nothing") {
        const auto spec = load_ok("version: 1\nproject: p\nvms: [{name: a}]\n");
        CHECK(spec.libvirt.uri == "qemu:///system");
        CHECK(spec.deploy.project == "lab");
        CHECK(spec.ssh.user == "labctl");
    }
    SECTION("the file wins over defaults") {
        const auto spec = load_ok(k_lab);
        CHECK(spec.project == "filelab");
        CHECK(spec.network.name == "filelab-net");
        CHECK(spec.libvirt.uri == "qemu:///session");
        CHECK(spec.libvirt.pool == "filepool");
        CHECK(spec.ssh.user == "fileuser");
        CHECK(spec.deploy.project == "fileproject");
        CHECK(spec.deploy.host.empty());
    }
    SECTION("the environment wins over the file") {
        LoadOptions o;
        o.env = {{"LABCTL_PROJECT", "envlab"},
                 {"LABCTL_LIBVIRT_URI", "test:///default"},
                 {"LABCTL_POOL", "envpool"},
                 {"LABCTL_DOMAIN_TYPE", "qemu"},
                 {"LABCTL_SSH_USER", "envuser"},
                 {"LABCTL_SSH_KEY", "keys/env_key"},
                 {"LABCTL_KNOWN_HOSTS", "/tmp/env_known_hosts"},
                 {"PROJECT", "envproject"},
                 {"LAB_HOST", "192.0.2.7"}};
        const auto spec = load_ok(k_lab, o);
        CHECK(spec.project == "envlab");
        CHECK(spec.network.name == "envlab-net"); // derived after the environment applied
        CHECK(spec.libvirt.uri == "test:///default");
        CHECK(spec.libvirt.pool == "envpool");
        CHECK(spec.libvirt.domain_type == "qemu");
        CHECK(spec.ssh.user == "envuser");
        CHECK(spec.hardening.allow_users == std::vector<std::string>{"envuser"});
        // Paths from the environment are relative to where labctl runs, not to lab.yaml.
        CHECK(spec.ssh.private_key == (fs::current_path() / "keys/env_key").string());
        CHECK(spec.ssh.known_hosts == "/tmp/env_known_hosts");
        CHECK(spec.deploy.project == "envproject");
        CHECK(spec.deploy.host == "192.0.2.7");
    }
    SECTION("flags win over the environment") {
        LoadOptions o;
        o.env = {{"LABCTL_PROJECT", "envlab"},
                 {"LABCTL_LIBVIRT_URI", "test:///default"},
                 {"LAB_HOST", "192.0.2.7"}};
        o.overrides.project = "flaglab";
        o.overrides.libvirt_uri = "qemu+ssh://root@kvm1/system";
        o.overrides.host = "lab.example.org";
        const auto spec = load_ok(k_lab, o);
        CHECK(spec.project == "flaglab");
        CHECK(spec.network.name == "flaglab-net");
        CHECK(spec.libvirt.uri == "qemu+ssh://root@kvm1/system");
        CHECK(spec.deploy.host == "lab.example.org");
    }
    SECTION("an empty variable counts as unset") {
        LoadOptions o;
        o.env = {{"LABCTL_PROJECT", ""}, {"LAB_HOST", ""}};
        const auto spec = load_ok(k_lab, o);
        CHECK(spec.project == "filelab");
        CHECK(spec.deploy.host.empty());
    }
    SECTION("an explicit network.name is not derived from the project") {
        LoadOptions o;
        o.env = {{"LABCTL_PROJECT", "envlab"}};
        const auto spec =
            load_ok("version: 1\nproject: p\nnetwork: {name: fixed}\nvms: [{name: a}]\n", o);
        CHECK(spec.network.name == "fixed");
    }
    SECTION("the environment may supply a project the file leaves out") {
        LoadOptions o;
        o.env = {{"LABCTL_PROJECT", "envlab"}};
        const auto spec = load_ok("version: 1\nvms: [{name: a}]\n", o);
        CHECK(spec.project == "envlab");
    }
}

TEST_CASE("bad environment values and flags are reported where they come from",
          "[config][precedence]") {
    LoadOptions o;
    o.env = {{"LABCTL_DOMAIN_TYPE", "kmv"},
             {"LABCTL_PROJECT", "Bad_Lab"},
             {"LABCTL_SSH_USER", "root"},
             {"LAB_HOST", "ssh://host"}};
    o.overrides.host = "-oProxyCommand=sh";
    const auto r = load_lab_text(k_lab, "lab.yaml", o);
    CHECK_FALSE(r.ok());
    CHECK(errors(r) ==
          std::vector<std::string>{
              "$LABCTL_PROJECT: error: project 'Bad_Lab' is not a valid name\n"
              "  hint: use lowercase letters, digits and '-', starting with a letter (at most 40 "
              "characters), e.g. 'bad-lab'",
              "$LABCTL_DOMAIN_TYPE: error: libvirt.domain_type 'kmv' is not one of: kvm, qemu, "
              "auto\n  hint: did you mean 'kvm'?",
              "$LABCTL_SSH_USER: error: ssh.user must not be 'root'\n"
              "  hint: hardening turns root login off, so labctl would lock itself out; use an "
              "unprivileged user with sudo, such as the default 'labctl'",
              "$LAB_HOST: error: deploy.host 'ssh://host' is not [USER@]HOST[:PORT]\n"
              "  hint: e.g. 192.0.2.10, admin@lab.example.org or admin@192.0.2.10:2222 (IPv6: "
              "[2001:db8::1]:2222); without USER and PORT, ssh.user and ssh.port apply",
              "--host: error: deploy.host '-oProxyCommand=sh' is not [USER@]HOST[:PORT]\n"
              "  hint: e.g. 192.0.2.10, admin@lab.example.org or admin@192.0.2.10:2222 (IPv6: "
              "[2001:db8::1]:2222); without USER and PORT, ssh.user and ssh.port apply",
          });
    for (const auto& d : r.diagnostics) {
        if (d.where.file.front() == '$' || d.where.file.front() == '-') {
            CHECK(d.where.line == 0);
            CHECK(d.where.column == 0);
        }
    }
}

TEST_CASE("an ssh user from the environment must be in the file's allow_users",
          "[config][precedence]") {
    LoadOptions o;
    o.env = {{"LABCTL_SSH_USER", "deployer"}};
    const auto r = load_lab_text("version: 1\nproject: p\nvms: [{name: a}]\n"
                                 "hardening:\n  allow_users: [fileuser, labctl]\n",
                                 "lab.yaml", o);
    CHECK(errors(r) == std::vector<std::string>{
                           "lab.yaml:5:16: error: hardening.allow_users must contain the ssh user "
                           "'deployer' or labctl would lock itself out\n"
                           "  hint: add 'deployer' to the list, or delete allow_users to allow "
                           "only 'deployer'"});
}

TEST_CASE("allow_users always ends up containing ssh.user", "[config]") {
    CHECK(load_ok("version: 1\nproject: p\nvms: [{name: a}]\nssh: {user: ops}\n")
              .hardening.allow_users == std::vector<std::string>{"ops"});
    CHECK(load_ok("version: 1\nproject: p\nvms: [{name: a}]\nssh: {user: ops}\n"
                  "hardening: {allow_users: [alice, ops]}\n")
              .hardening.allow_users == std::vector<std::string>{"alice", "ops"});
    CHECK(load_ok("version: 1\nproject: p\nvms: [{name: a}]\nhardening: {allow_users: []}\n")
              .hardening.allow_users == std::vector<std::string>{"labctl"});
}

TEST_CASE("every problem is reported at once, in file order", "[config]") {
    LoadOptions o;
    o.path = labctl::test::fixture("config/bad/several_problems.yaml").string();
    const auto r = load_lab(o);
    CHECK_FALSE(r.ok());
    std::vector<const Diagnostic*> errs;
    for (const auto& d : r.diagnostics)
        if (d.severity == Severity::error)
            errs.push_back(&d);
    REQUIRE(errs.size() == 5);
    std::vector<int> lines;
    for (const auto* d : errs) {
        CHECK(d->where.file == o.path);
        CHECK(d->where.column > 0);
        CHECK_FALSE(d->hint.empty());
        lines.push_back(d->where.line);
    }
    CHECK(lines == std::vector<int>{3, 8, 9, 11, 13});
}

TEST_CASE("target_vm defaults to the first stack VM, else the first VM", "[config]") {
    CHECK(load_ok("version: 1\nproject: p\nvms: [{name: a}, {name: b, roles: [stack]}]\n")
              .deploy.target_vm == "b");
    CHECK(load_ok("version: 1\nproject: p\nvms: [{name: a}, {name: b}]\n").deploy.target_vm == "a");
    CHECK(load_ok("version: 1\nproject: p\nvms: [{name: a}, {name: b}]\n"
                  "deploy: {target_vm: b}\n")
              .deploy.target_vm == "b");
}

TEST_CASE("VM addresses are assigned from .10 on, skipping the ones in use", "[config]") {
    const auto spec = load_ok("version: 1\nproject: p\nvms:\n"
                              "  - {name: a}\n"
                              "  - {name: b, ip: 10.66.77.11}\n"
                              "  - {name: c}\n"
                              "  - {name: d, ip: 10.66.77.2}\n"
                              "  - {name: e}\n");
    CHECK(spec.vms[0].ip == "10.66.77.10");
    CHECK(spec.vms[1].ip == "10.66.77.11");
    CHECK(spec.vms[2].ip == "10.66.77.12");
    CHECK(spec.vms[3].ip == "10.66.77.2");
    CHECK(spec.vms[4].ip == "10.66.77.13");

    // A /29 has no .10: assignment starts after the gateway.
    const auto small = load_ok("version: 1\nproject: p\nnetwork: {cidr: 10.1.2.8/29}\n"
                               "vms: [{name: a}, {name: b}]\n");
    CHECK(small.vms[0].ip == "10.1.2.10");
    CHECK(small.vms[1].ip == "10.1.2.11");
    const auto tiny = load_ok("version: 1\nproject: p\nnetwork: {cidr: 10.1.2.0/29}\n"
                              "vms: [{name: a}, {name: b}]\n");
    CHECK(tiny.vms[0].ip == "10.1.2.2");
    CHECK(tiny.vms[1].ip == "10.1.2.3");
}

TEST_CASE("an empty value means the default", "[config]") {
    const auto spec = load_ok("version: 1\nproject: p\nlibvirt:\n  pool:\nhardening:\n"
                              "vms:\n  - name: a\n    ip:\n");
    CHECK(spec.libvirt.pool == "default");
    CHECK(spec.vms[0].ip == "10.66.77.10");
}

TEST_CASE("wrong types are described as YAML sees them", "[config]") {
    const auto check = [](const std::string& value, const std::string& described) {
        const auto r = load_lab_text(
            "version: 1\nproject: p\nvms:\n  - name: a\n    cpus: " + value + "\n", "lab.yaml");
        const auto errs = errors(r);
        REQUIRE(errs.size() == 1);
        CHECK(errs.front().rfind(
                  "lab.yaml:5:11: error: vms[0].cpus must be an integer, got " + described, 0) ==
              0);
    };
    check("2.5", "number 2.5");
    check("true", "boolean 'true'");
    check("[1, 2]", "a list");
    check("{n: 1}", "a mapping");
    check("'3'", "string '3'");
    check("many", "string 'many'");
}

TEST_CASE("a missing lab file is one error without a position", "[config]") {
    TempDir dir;
    LoadOptions o;
    o.path = (dir.path() / "nope.yaml").string();
    const auto r = load_lab(o);
    CHECK_FALSE(r.ok());
    CHECK(formatted(r) ==
          std::vector<std::string>{o.path + ": error: cannot read the lab file: No such file or "
                                            "directory\n  hint: run 'labctl init' to write one, or "
                                            "point -f (or LABCTL_FILE) at it"});
}

TEST_CASE("private key checks", "[config][key]") {
    const std::string text = "version: 1\nproject: p\nvms: [{name: a}]\n";
    TempDir dir;
    LoadOptions o;
    o.path = dir.write("lab.yaml", text).string();

    SECTION("a missing key is a warning, or an error when the key is required") {
        auto r = load_lab(o);
        CHECK(r.ok());
        REQUIRE(key_diagnostics(r).size() == 1);
        CHECK(format(*key_diagnostics(r)[0]) ==
              o.path + ": warning: ssh.private_key '.labctl/id_ed25519' (the default) does not "
                       "exist\n  hint: run 'labctl init' to create a key pair");
        o.require_key = true;
        r = load_lab(o);
        CHECK_FALSE(r.ok());
        REQUIRE(key_diagnostics(r).size() == 1);
        CHECK(key_diagnostics(r)[0]->severity == Severity::error);
    }
    SECTION("a key pair with mode 0600 is fine") {
        make_key(dir, 0600);
        o.require_key = true;
        const auto r = load_lab(o);
        CHECK(r.ok());
        CHECK(r.diagnostics.empty());
    }
    SECTION("a key readable by group or others is an error even when not required") {
        for (const mode_t mode : {0644, 0640, 0604, 0660, 0666, 0601}) {
            CAPTURE(mode);
            const auto key = make_key(dir, mode);
            for (const bool required : {false, true}) {
                o.require_key = required;
                const auto r = load_lab(o);
                CHECK_FALSE(r.ok());
                REQUIRE(key_diagnostics(r).size() == 1);
                const auto& d = *key_diagnostics(r)[0];
                CHECK(d.severity == Severity::error);
                CHECK(d.where.line == 0);
                CHECK(d.hint == "chmod 600 " + key.string());
            }
        }
        make_key(dir, 0640);
        const auto r = load_lab(o);
        CHECK(format(*key_diagnostics(r)[0]) ==
              o.path +
                  ": error: ssh.private_key '.labctl/id_ed25519' (the default) has mode 0640: "
                  "group or others can access it\n  hint: chmod 600 " +
                  (dir.path() / ".labctl/id_ed25519").string());
    }
    SECTION("mode 0400 is fine too") {
        make_key(dir, 0400);
        CHECK(load_lab(o).diagnostics.empty());
    }
    SECTION("a key given in the file is reported at its line") {
        const auto key = dir.write("keys/k", "x");
        dir.write("keys/k.pub", "x");
        ::chmod(key.c_str(), 0644);
        o.path = dir.write("other.yaml", text + "ssh:\n  private_key: keys/k\n").string();
        const auto r = load_lab(o);
        REQUIRE(key_diagnostics(r).size() == 1);
        CHECK(format(*key_diagnostics(r)[0]) ==
              o.path +
                  ":5:16: error: ssh.private_key 'keys/k' has mode 0644: group or others "
                  "can access it\n  hint: chmod 600 " +
                  key.string());
    }
    SECTION("a missing public key is a warning") {
        const auto key = make_key(dir, 0600, false);
        const auto r = load_lab(o);
        CHECK(r.ok());
        REQUIRE(key_diagnostics(r).size() == 1);
        CHECK(key_diagnostics(r)[0]->severity == Severity::warning);
        CHECK(key_diagnostics(r)[0]->hint ==
              "recreate it: ssh-keygen -y -f " + key.string() + " > " + key.string() + ".pub");
    }
    SECTION("a key from the environment is reported there") {
        o.env = {{"LABCTL_SSH_KEY", (dir.path() / "missing").string()}};
        const auto r = load_lab(o);
        REQUIRE(key_diagnostics(r).size() == 1);
        CHECK(key_diagnostics(r)[0]->where.file == "$LABCTL_SSH_KEY");
    }
}

TEST_CASE("the bundled example validates without errors", "[config][example]") {
    LoadOptions o;
    o.path = (labctl::test::source_dir() / "examples/lab.yaml").string();
    const auto r = load_lab(o);
    for (const auto& d : r.diagnostics) {
        INFO(format(d));
        CHECK(d.severity == Severity::warning);
        CHECK(d.message.rfind("ssh.private_key", 0) == 0); // no key pair in a fresh clone
    }
    REQUIRE(r.ok());
    const auto& spec = *r.spec;
    CHECK(spec.project == "lab");
    REQUIRE(spec.vms.size() == 1);
    CHECK(spec.vms[0].name == "lab1");
    CHECK(spec.vms[0].cpus == 4);
    CHECK(spec.vms[0].memory_bytes == 8ULL << 30);
    CHECK(spec.vms[0].disk_bytes == 40ULL << 30);
    CHECK(spec.vms[0].roles == std::vector<std::string>{"stack"});
    CHECK(spec.network.mode == "nat");
    CHECK(spec.deploy.target_vm == "lab1");
    CHECK(spec.deploy.stack_dir == (labctl::test::source_dir() / "stacks/lab").string());
    // The URL form, verified by Debian's SHA512SUMS beside it.
    CHECK(spec.image.path.empty());
    CHECK(spec.image.url == "https://cloud.debian.org/images/cloud/bookworm/latest/"
                            "debian-12-genericcloud-amd64.qcow2");
    CHECK(spec.image.checksums ==
          "https://cloud.debian.org/images/cloud/bookworm/latest/SHA512SUMS");
}

TEST_CASE("examples/lab-local.yaml validates: one VM, mode user, forwards for ssh and the offline "
          "stack, image.build, preloaded images, the checks that apply",
          "[config][example]") {
    LoadOptions o;
    o.path = (labctl::test::source_dir() / "examples/lab-local.yaml").string();
    const auto r = load_lab(o);
    for (const auto& d : r.diagnostics) {
        INFO(format(d));
        CHECK(d.severity == Severity::warning);
        CHECK(d.message.rfind("ssh.private_key", 0) == 0);
    }
    REQUIRE(r.ok());
    const auto& spec = *r.spec;
    CHECK(spec.libvirt.uri == "qemu:///system");
    CHECK(spec.libvirt.domain_type == "auto");
    CHECK(spec.network.mode == "user");
    REQUIRE(spec.vms.size() == 1);
    const auto& vm = spec.vms[0];
    CHECK(vm.cpus == 2);
    CHECK(vm.memory_bytes == 3ULL << 30);
    CHECK(vm.disk_bytes == 12ULL << 30);
    CHECK(vm.host_port(22) == 2222);
    for (const int port : {8080, 5000, 9090})
        CHECK(vm.host_port(port) == port);
    for (const int port : {3000, 3200, 3100, 13133}) // not in the offline stack
        CHECK_FALSE(vm.host_port(port));
    REQUIRE(spec.image.build);
    CHECK(spec.image.build->suite == "bookworm");
    CHECK(spec.libvirt.pool_path == "/var/lib/libvirt/images");
    CHECK(spec.deploy.stack_dir == (labctl::test::source_dir() / "stacks/lab-offline").string());
    CHECK(spec.deploy.preload_images == std::vector<std::string>{"auto"});
    CHECK(spec.verify.checks == std::vector<std::string>{"stack.health", "prometheus.targets",
                                                         "prometheus.sli", "ssh.hardened",
                                                         "host.hardened"});
    CHECK(spec.verify.services == std::vector<std::string>{"api", "nginx", "prometheus"});
    CHECK(spec.verify.prometheus_jobs == std::vector<std::string>{"prometheus", "task-api"});
}

TEST_CASE("the template labctl init writes validates clean once the key exists",
          "[config][template]") {
    const std::string text =
        labctl::templates::render(labctl::templates::load("lab.yaml"), {{"project", "fresh"}});
    TempDir dir;
    make_key(dir, 0600);
    LoadOptions o;
    o.path = dir.write("lab.yaml", text).string();
    o.require_key = true;
    const auto r = load_lab(o);
    CHECK(formatted(r).empty());
    REQUIRE(r.ok());
    CHECK(r.spec->project == "fresh");
    CHECK(r.spec->network.name == "fresh-net");
    CHECK(r.spec->deploy.target_vm == "lab1");
}

TEST_CASE("format puts file, position, severity, message and hint together", "[config]") {
    Diagnostic d{Severity::error, {"lab.yaml", 3, 5}, "something is wrong", "fix it"};
    CHECK(format(d) == "lab.yaml:3:5: error: something is wrong\n  hint: fix it");
    d.hint.clear();
    CHECK(format(d) == "lab.yaml:3:5: error: something is wrong");
    d.severity = Severity::warning;
    d.where = {"lab.yaml", 0, 0};
    CHECK(format(d) == "lab.yaml: warning: something is wrong");
    d.where = {"$LAB_HOST", 0, 0};
    CHECK(format(d) == "$LAB_HOST: warning: something is wrong");
    CHECK_FALSE(labctl::config::has_errors({d}));
    d.severity = Severity::error;
    CHECK(labctl::config::has_errors({d}));
}

TEST_CASE("the environment labctl reads is documented and snapshotted", "[config][env]") {
    const auto& vars = labctl::config::environment_variables();
    for (const char* name :
         {"LABCTL_FILE", "LABCTL_PROJECT", "LABCTL_LIBVIRT_URI", "LABCTL_POOL", "LABCTL_SSH_USER",
          "LABCTL_SSH_KEY", "LABCTL_KNOWN_HOSTS", "LABCTL_DOMAIN_TYPE", "PROJECT", "LAB_HOST"}) {
        CAPTURE(name);
        const auto it =
            std::find_if(vars.begin(), vars.end(), [&](const auto& v) { return v.name == name; });
        REQUIRE(it != vars.end());
        CHECK_FALSE(it->meaning.empty());
    }
    const char* saved = std::getenv("LAB_HOST");
    const std::string saved_value = saved ? saved : "";
    ::setenv("LAB_HOST", "203.0.113.9", 1);
    const auto snapshot = labctl::config::environment_snapshot();
    CHECK(snapshot.at("LAB_HOST") == "203.0.113.9");
    for (const auto& [name, value] : snapshot)
        CHECK(std::any_of(vars.begin(), vars.end(), [&](const auto& v) { return v.name == name; }));
    if (saved)
        ::setenv("LAB_HOST", saved_value.c_str(), 1);
    else
        ::unsetenv("LAB_HOST");
}

TEST_CASE("known checks are in report order", "[config]") {
    CHECK(labctl::config::known_checks() ==
          std::vector<std::string>{"stack.health", "prometheus.targets", "prometheus.sli",
                                   "trace.e2e", "logs.correlated", "grafana.provisioned",
                                   "nginx.resilience", "ssh.hardened", "host.hardened"});
}

TEST_CASE("deploy.pins names a pin set file of the stack, LAB_PINS overrides, a missing set is "
          "an error at the key with the sets that exist",
          "[config][pins]") {
    TempDir dir;
    dir.write("stack/pins/original.env", "LAB_PINS=original\n");
    dir.write("stack/pins/current.env", "LAB_PINS=current\n");
    const auto lab = [](const std::string& pins) {
        return "version: 1\nproject: p\nvms: [{name: a}]\ndeploy:\n  stack_dir: stack\n" +
               (pins.empty() ? std::string() : "  pins: " + pins + "\n");
    };
    LoadOptions o;
    o.path = dir.write("lab.yaml", lab("current")).string();
    auto r = load_lab(o);
    REQUIRE(r.ok());
    CHECK(r.spec->deploy.pins == "current");

    o.env = {{"LAB_PINS", "original"}};
    r = load_lab(o);
    REQUIRE(r.ok());
    CHECK(r.spec->deploy.pins == "original");

    o.env.clear();
    o.path = dir.write("lab.yaml", lab("curent")).string();
    r = load_lab(o);
    REQUIRE(errors(r).size() == 1);
    CHECK(errors(r).front() ==
          fmt::format("{}:6:9: error: deploy.pins 'curent': there is no {}/stack/pins/curent.env\n"
                      "  hint: did you mean 'current'?",
                      o.path, dir.path().string()));

    o.path = dir.write("lab.yaml", lab("'../etc'")).string();
    r = load_lab(o);
    REQUIRE(errors(r).size() == 1);
    CHECK(errors(r).front().find("deploy.pins '../etc' is not a pin set name") !=
          std::string::npos);

    o.path = dir.write("lab.yaml", lab("")).string();
    r = load_lab(o);
    REQUIRE(r.ok());
    CHECK(r.spec->deploy.pins.empty());
}

TEST_CASE("the --host flag, LAB_HOST and deploy.host take the documented USER@HOST:PORT form",
          "[config][host]") {
    for (const std::string good :
         {"labctl@127.0.0.1:2222", "admin@host:22", "admin@host", "host", "192.0.2.10",
          "lab.example.org:2200", "[::1]:2222", "admin@[2001:db8::1]", "2001:db8::1", "::1"}) {
        CAPTURE(good);
        LoadOptions flag;
        flag.overrides.host = good;
        CHECK(load_ok(k_lab, flag).deploy.host == good);
        LoadOptions env;
        env.env = {{"LAB_HOST", good}};
        CHECK(load_ok(k_lab, env).deploy.host == good);
        std::string in_file = k_lab;
        in_file.replace(in_file.find("deploy:\n"), 8, "deploy:\n  host: '" + good + "'\n");
        CHECK(load_ok(in_file).deploy.host == good);
    }
    for (const std::string bad : {"-oProxyCommand=sh", "Admin@host", "host:", "host:0",
                                  "host:65536", "[::1", "[::1]2222", "@host", "a b", "ssh://h"}) {
        CAPTURE(bad);
        LoadOptions flag;
        flag.overrides.host = bad;
        const auto r = load_lab_text(k_lab, "lab.yaml", flag);
        REQUIRE(errors(r).size() == 1);
        CHECK(errors(r).front().find("is not [USER@]HOST[:PORT]") != std::string::npos);
    }
}

TEST_CASE("the host hardening parts are on by default and each can be turned off",
          "[config][hardening]") {
    const auto defaults = load_ok("version: 1\nproject: p\nvms: [{name: a}]\n").hardening;
    CHECK(defaults.firewall.enabled);
    CHECK(defaults.fail2ban);
    CHECK(defaults.auditd);
    CHECK(defaults.sysctl);
    CHECK(defaults.host_parts());
    const auto off = load_ok("version: 1\nproject: p\nvms: [{name: a}]\nhardening:\n"
                             "  firewall: false\n  fail2ban: false\n  auditd: false\n"
                             "  sysctl: false\n")
                         .hardening;
    CHECK_FALSE(off.host_parts());
    const auto fw = load_ok("version: 1\nproject: p\nvms: [{name: a}]\nhardening:\n"
                            "  firewall:\n    ssh_sources: [192.0.2.0/24, '2001:db8::/32']\n"
                            "    allow: [9100/tcp, 60000-60010/udp, 8443]\n")
                        .hardening.firewall;
    CHECK(fw.enabled);
    CHECK(fw.ssh_sources == std::vector<std::string>{"192.0.2.0/24", "2001:db8::/32"});
    REQUIRE(fw.allow.size() == 3);
    CHECK(fw.allow[1].protocol == "udp");
    CHECK(fw.allow[1].first == 60000);
    CHECK(fw.allow[1].last == 60010);
    CHECK(fw.allow[2].protocol == "tcp");
    CHECK(fw.allow[2].first == 8443);
}

TEST_CASE("bad host hardening values are reported where they are", "[config][hardening]") {
    const auto r = load_lab_text("version: 1\nproject: p\nvms: [{name: a}]\nhardening:\n"
                                 "  fail2ban: yes\n  firewall:\n    ssh_sources: [10.0.0.0/33, "
                                 "example.org]\n    allow: [70000, 20-10/tcp, 53/icmp]\n",
                                 "lab.yaml", {});
    const auto e = errors(r);
    REQUIRE(e.size() == 6);
    CHECK(e[0] == "lab.yaml:5:13: error: hardening.fail2ban must be true or false, got boolean "
                  "'yes'\n  hint: YAML 1.2 knows only true and false: fail2ban: true");
    CHECK(contains(e[1], "lab.yaml:7:19: error: hardening.firewall.ssh_sources[0] '10.0.0.0/33' "
                         "has a bad prefix length (0 to 32)"));
    CHECK(contains(e[2], "'example.org' is not an IPv4 or IPv6 address or network"));
    CHECK(contains(e[3], "lab.yaml:8:13: error: hardening.firewall.allow[0] '70000' is not a "
                         "port, range or protocol labctl opens"));
    CHECK(contains(e[3], "hint: write PORT[/tcp|/udp]"));
    CHECK(contains(e[4], "'20-10/tcp'"));
    CHECK(contains(e[5], "'53/icmp'"));
}
