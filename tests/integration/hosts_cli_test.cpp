// labctl plan, provision, status, doctor and down on a lab of two libvirt hosts (two of
// libvirt's test:///<file> drivers), through the binary: a HOST column only when there are
// several, the hosts in JSON, every VM on its host. The test driver's state ends with each
// command's connection, so each command starts from the fixture file.

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include <labctl/core/process.hpp>

#include "support.hpp"

using namespace labctl;
using labctl::test::fixture;
using labctl::test::qcow2_header;
using labctl::test::read_file;
using labctl::test::TempDir;

namespace {

using labctl::test::contains;

struct Lab {
    TempDir dir;
    std::string file;

    Lab() {
        const auto node = read_file(fixture("libvirt/pool_only.xml"));
        dir.write("images/base.qcow2", qcow2_header(2ULL << 30));
        const auto key = dir.path() / ".labctl" / "id_ed25519";
        std::filesystem::create_directories(key.parent_path());
        REQUIRE(
            run_process({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key.string()}).ok());
        file = dir.write("lab.yaml", fmt::format(R"(version: 1
project: duo
libvirt:
  domain_type: qemu
hosts:
  kvm1:
    uri: test://{}
  kvm2:
    uri: test://{}
network:
  cidr: 10.66.77.0/24
image:
  path: images/base.qcow2
vms:
  - {{name: web, memory: 1GiB, disk: 10GiB, roles: [stack]}}
  - {{name: db, memory: 1GiB, disk: 10GiB, host: kvm2}}
)",
                                                 dir.write("kvm1.xml", node).string(),
                                                 dir.write("kvm2.xml", node).string()))
                   .string();
    }
};

} // namespace

TEST_CASE("hosts cli: plan lists each host's plan, and --detailed-exitcode sees the changes on "
          "any of them",
          "[cli][hosts]") {
    Lab lab;
    const auto r = test::run_labctl({"plan", "-f", lab.file, "--detailed-exitcode"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 10);
    CHECK(contains(r.out, "Host kvm1 (test://"));
    CHECK(contains(r.out, "Host kvm2 (test://"));
    const auto kvm2 = r.out.substr(r.out.find("Host kvm2"));
    CHECK(contains(kvm2, "duo-db"));
    CHECK_FALSE(contains(kvm2, "duo-web"));
    const auto json = test::run_labctl({"plan", "-f", lab.file, "--output", "json"});
    const auto j = nlohmann::json::parse(json.out);
    CHECK(j["changes"] == true);
    REQUIRE(j["hosts"].size() == 2);
    CHECK(j["hosts"][0]["host"] == "kvm1");
    CHECK(j["hosts"][1]["host"] == "kvm2");
}

TEST_CASE("hosts cli: provision makes each VM on its host and says which, status and down name "
          "the hosts",
          "[cli][hosts]") {
    Lab lab;
    const auto r = test::run_labctl({"provision", "-f", lab.file, "--output", "json"});
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    const auto j = nlohmann::json::parse(r.out);
    REQUIRE(j["hosts"].size() == 2);
    CHECK(j["hosts"][1]["name"] == "kvm2");
    std::set<std::string> domains_on_kvm2;
    for (const auto& c : j["changes"])
        if (c["kind"] == "domain" && c["host"] == "kvm2")
            domains_on_kvm2.insert(c["name"]);
    CHECK(domains_on_kvm2 == std::set<std::string>{"duo-db"});
    REQUIRE(j["vms"].size() == 2);
    for (const auto& vm : j["vms"])
        CHECK(vm["host"] == (vm["vm"] == "db" ? "kvm2" : "kvm1"));

    const auto table = test::run_labctl({"provision", "-f", lab.file});
    INFO(table.err);
    CHECK(table.exit_code == 0);
    CHECK(contains(table.out, "HOST  ACTION"));
    CHECK(contains(table.out, "kvm2  create  domain"));

    // A fresh connection: the test driver forgot; status still lists the lab's VMs by host.
    const auto st = test::run_labctl({"status", "-f", lab.file});
    INFO(st.out << st.err);
    CHECK(st.exit_code == 0);
    CHECK(contains(st.out, "HOST  VM"));
    CHECK(contains(st.out, "kvm2  db"));
    const auto down = test::run_labctl({"down", "-f", lab.file, "--output", "json"});
    INFO(down.err);
    CHECK(down.exit_code == 0);
    CHECK(nlohmann::json::parse(down.out)["hosts"].size() == 2);
}

TEST_CASE("hosts cli: doctor checks each host's libvirt, pool and network, and this machine once",
          "[cli][hosts]") {
    Lab lab;
    const auto r = test::run_labctl({"doctor", "-f", lab.file, "--output", "json"});
    INFO(r.out << r.err);
    const auto j = nlohmann::json::parse(r.out);
    std::multiset<std::string> rows;
    for (const auto& c : j["checks"])
        rows.insert(c["name"].get<std::string>() + "@" + c.value("host", std::string()));
    CHECK(rows.count("libvirt.uri@kvm1") == 1);
    CHECK(rows.count("libvirt.uri@kvm2") == 1);
    CHECK(rows.count("libvirt.pool@kvm2") == 1);
    CHECK(rows.count("network.cidr@kvm2") == 1);
    CHECK(rows.count("ssh.jump@kvm2") == 1);
    CHECK(rows.count("tools.rsync@") == 1); // about this machine: once
    CHECK(rows.count("ssh.key@") == 1);
    const auto table = test::run_labctl({"doctor", "-f", lab.file});
    CHECK(contains(table.out, "libvirt.uri (kvm2)"));
}

TEST_CASE("hosts cli: a host that cannot be reached fails status and down with its name, after "
          "what the other hosts answered",
          "[cli][hosts]") {
    Lab lab;
    // kvm2's test driver file disappears: that host cannot be opened.
    std::filesystem::remove(lab.dir.path() / "kvm2.xml");
    const auto st = test::run_labctl({"status", "-f", lab.file});
    INFO(st.out << st.err);
    CHECK(st.exit_code == 3);
    CHECK(contains(st.out, "kvm1  web"));
    CHECK(contains(st.out, "kvm2  db   -        unknown  -        host unreachable"));
    CHECK(contains(st.err, "labctl: error: host 'kvm2' (test://"));
    const auto down = test::run_labctl({"down", "-f", lab.file});
    INFO(down.out << down.err);
    CHECK(down.exit_code == 3);
    CHECK(contains(down.err, "host 'kvm2'"));
    CHECK(contains(down.err, "could not be cleaned"));
}
