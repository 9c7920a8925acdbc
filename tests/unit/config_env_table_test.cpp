// environment.cpp's table is the one list of the environment variables and of the setting each one
// layers onto: every variable with a setting reaches that setting through load_lab, a bad value is
// reported at the variable, and the table layers exactly the settings the loader documents.

#include <algorithm>
#include <catch2/catch.hpp>
#include <functional>
#include <map>
#include <set>
#include <string>

#include <labctl/config/loader.hpp>

#include "support.hpp"

using labctl::config::environment_variables;
using labctl::config::LabSpec;
using labctl::config::load_lab;
using labctl::config::LoadOptions;
using labctl::config::Severity;
using labctl::test::TempDir;

namespace {

/// What this test sets each layered setting to, how it reads it back, and (where the setting is
/// checked) a value the check refuses.
struct Probe {
    std::string good;
    std::function<std::string(const LabSpec&)> read;
    std::string bad;
};

std::map<std::string, Probe> probes(const TempDir& dir) {
    return {
        {"project", {"envlab", [](const LabSpec& s) { return s.project; }, "Bad_Lab"}},
        {"libvirt.uri",
         {"test:///default", [](const LabSpec& s) { return s.libvirt.uri; }, "not a uri"}},
        {"libvirt.pool", {"envpool", [](const LabSpec& s) { return s.libvirt.pool; }, ""}},
        {"libvirt.domain_type",
         {"qemu", [](const LabSpec& s) { return s.libvirt.domain_type; }, "kmv"}},
        {"ssh.user", {"envuser", [](const LabSpec& s) { return s.ssh.user; }, "root"}},
        {"ssh.private_key",
         {(dir.path() / "env_key").string(), [](const LabSpec& s) { return s.ssh.private_key; },
          ""}},
        {"ssh.known_hosts",
         {(dir.path() / "env_known_hosts").string(),
          [](const LabSpec& s) { return s.ssh.known_hosts; }, ""}},
        {"deploy.project",
         {"envproject", [](const LabSpec& s) { return s.deploy.project; }, "Bad Project"}},
        {"deploy.host", {"192.0.2.7", [](const LabSpec& s) { return s.deploy.host; }, "ssh://h"}},
        {"deploy.pins", {"current", [](const LabSpec& s) { return s.deploy.pins; }, "../etc"}},
    };
}

} // namespace

TEST_CASE("every variable of the environment table layers onto its setting and is named when "
          "its value is refused",
          "[config][env]") {
    TempDir dir;
    dir.write("stack/pins/original.env", "X=1\n");
    dir.write("stack/pins/current.env", "X=2\n");
    const auto lab = dir.write("lab.yaml", "version: 1\nproject: filelab\nvms: [{name: a}]\n"
                                           "deploy:\n  stack_dir: stack\n  pins: original\n");
    const auto table = probes(dir);

    std::set<std::string> names;
    std::set<std::string> layered;
    for (const auto& var : environment_variables()) {
        INFO("variable " << var.name << " (setting '" << var.setting << "')");
        CHECK(names.insert(var.name).second); // each variable once
        CHECK(!var.meaning.empty());
        if (var.setting.empty())
            continue;                              // read by the CLI itself
        CHECK(layered.insert(var.setting).second); // one variable per setting
        const auto probe = table.find(var.setting);
        REQUIRE(probe != table.end());

        LoadOptions o;
        o.path = lab.string();
        const auto before = load_lab(o);
        REQUIRE(before.ok());
        CHECK(probe->second.read(*before.spec) != probe->second.good);

        o.env = {{var.name, probe->second.good}};
        const auto after = load_lab(o);
        REQUIRE(after.ok());
        CHECK(probe->second.read(*after.spec) == probe->second.good);

        if (probe->second.bad.empty())
            continue;
        o.env = {{var.name, probe->second.bad}};
        const auto refused = load_lab(o);
        CHECK(!refused.ok());
        const bool named =
            std::any_of(refused.diagnostics.begin(), refused.diagnostics.end(), [&](const auto& d) {
                return d.severity == Severity::error && d.where.file == "$" + var.name &&
                       d.message.find(var.setting) != std::string::npos;
            });
        CHECK(named);
    }
    CHECK(names.count("LABCTL_FILE") == 1);
    // The settings the environment layers onto, as the man page's ENVIRONMENT section lists them.
    CHECK(layered == std::set<std::string>{"project", "libvirt.uri", "libvirt.pool",
                                           "libvirt.domain_type", "ssh.user", "ssh.private_key",
                                           "ssh.known_hosts", "deploy.project", "deploy.host",
                                           "deploy.pins"});
}
