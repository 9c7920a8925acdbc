// The converge check's pure parts: the tree fingerprint, the record, the observation's parser and
// the drift sentences. The round trip itself runs against real sshd and Docker in
// tests/integration/deploy_test.cpp.

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <functional>

#include <labctl/deploy/converge.hpp>
#include <labctl/deploy/mounts.hpp>
#include <labctl/deploy/preload.hpp>
#include <labctl/deploy/tree.hpp>

#include "support.hpp"

using namespace labctl;

namespace {
const std::vector<std::string> k_excludes{".git/",         "build/", "build-*/", ".labctl/",
                                          "node_modules/", "*.swp",  ".DS_Store"};

deploy::ServiceState container(const std::string& service, const std::string& id,
                               const std::string& state = "running", int exit_code = 0,
                               const std::string& health = "healthy") {
    deploy::ServiceState s;
    s.service = service;
    s.container_id = id;
    s.state = state;
    s.exit_code = exit_code;
    s.health = health;
    return s;
}

/// A record, the inputs that match it and an observation of a target that matches both.
struct Converged {
    deploy::DeployInputs inputs;
    deploy::TargetObservation seen;
    Converged() {
        inputs.labctl_version = "1.2.3";
        inputs.project = "lab";
        inputs.remote_dir = "/opt/labctl/lab";
        inputs.tree = "tree1";
        inputs.env = "env1";
        inputs.compose_inputs = "ci1";
        inputs.images = {{"lab/task-api:latest", "sha256:local1"}};
        deploy::DeployRecord r;
        r.inputs = inputs;
        r.remote_tree = "remote1";
        r.compose_flavor = "v1";
        r.compose_version = "1.29.2";
        r.services = {container("backend", "c1"), container("lab-init", "c2", "exited", 0, "")};
        r.applied_at = "2026-12-07T08:00:00Z";
        seen.record_present = true;
        seen.record = deploy::record_from_json(deploy::to_json(r).dump());
        seen.remote_tree = "remote1";
        seen.compose_v1 = true;
        seen.containers = r.services;
    }
    bool says(const std::string& words) const {
        for (const auto& d : deploy::drift(seen, inputs))
            if (test::contains(d, words))
                return true;
        return false;
    }
};
} // namespace

TEST_CASE("rsync-style excludes match names at any depth, directories-only with a slash",
          "[deploy][converge]") {
    CHECK(deploy::excluded(".git", true, k_excludes));
    CHECK_FALSE(deploy::excluded(".git", false, k_excludes)); // a file named .git is sent
    CHECK(deploy::excluded("build-release", true, k_excludes));
    CHECK(deploy::excluded("notes.swp", false, k_excludes));
    CHECK_FALSE(deploy::excluded("index.html", false, k_excludes));
}

TEST_CASE("the local tree fingerprint follows content, mode, names and links, not excluded "
          "entries",
          "[deploy][converge]") {
    test::TempDir dir;
    dir.write("stack/www/index.html", "hello\n");
    dir.write("stack/docker-compose.yml", "services: {}\n");
    const auto stack = (dir.path() / "stack").string();
    const auto first = deploy::local_tree_fingerprint(stack, k_excludes);
    CHECK(first.size() == 64);
    CHECK(deploy::local_tree_fingerprint(stack, k_excludes) == first);

    dir.write("stack/.git/HEAD", "ref: main\n");
    dir.write("stack/www/.notes.swp", "x");
    dir.write("stack/.labctl/deployed.json", "{}");
    CHECK(deploy::local_tree_fingerprint(stack, k_excludes) == first);

    dir.write("stack/www/index.html", "hello!\n");
    const auto changed = deploy::local_tree_fingerprint(stack, k_excludes);
    CHECK(changed != first);
    ::chmod((dir.path() / "stack/www/index.html").c_str(), 0600);
    const auto chmodded = deploy::local_tree_fingerprint(stack, k_excludes);
    CHECK(chmodded != changed);
    std::filesystem::create_symlink("index.html", dir.path() / "stack/www/home.html");
    CHECK(deploy::local_tree_fingerprint(stack, k_excludes) != chmodded);
    CHECK_THROWS_WITH(deploy::local_tree_fingerprint((dir.path() / "missing").string(), {}),
                      Catch::Contains("does not exist"));
}

TEST_CASE("the compose inputs fingerprint follows the top-level compose files, .env and the "
          "variables and secrets",
          "[deploy][converge]") {
    test::TempDir dir;
    dir.write("stack/docker-compose.yml", "services: {}\n");
    dir.write("stack/www/index.html", "a\n");
    const auto stack = (dir.path() / "stack").string();
    deploy::ComposeEnv env;
    env.vars = {{"TEMPO_VERSION", "2.3.1"}};
    env.secrets = {{"GRAFANA_ADMIN_PASSWORD", "s3cret"}};
    const auto first = deploy::compose_inputs_fingerprint(stack, env);
    dir.write("stack/www/index.html", "b\n");                  // not read by compose config
    dir.write("stack/prometheus.yml", "scrape_configs: []\n"); // mounted, not read by compose
    CHECK(deploy::compose_inputs_fingerprint(stack, env) == first);
    dir.write("stack/docker-compose.override.yml", "services: {}\n");
    CHECK(deploy::compose_inputs_fingerprint(stack, env) != first);
    std::filesystem::remove(dir.path() / "stack/docker-compose.override.yml");
    dir.write("stack/.env", "A=1\n");
    const auto with_env = deploy::compose_inputs_fingerprint(stack, env);
    CHECK(with_env != first);
    env.secrets["GRAFANA_ADMIN_PASSWORD"] = "other";
    CHECK(deploy::compose_inputs_fingerprint(stack, env) != with_env);
    CHECK(deploy::env_fingerprint(env).find("other") == std::string::npos);
}

TEST_CASE("the remote tree command prunes the excludes and says absent for a missing directory",
          "[deploy][converge]") {
    const auto cmd = deploy::remote_tree_fingerprint_command("/opt/lab dir", k_excludes);
    CHECK(test::contains(cmd, "cd '/opt/lab dir'"));
    CHECK(test::contains(cmd, "\\( -type d -name '.git' \\)"));
    CHECK(test::contains(cmd, "-name '*.swp'"));
    CHECK(test::contains(cmd, "echo absent"));
}

TEST_CASE("a deploy record survives its JSON round trip, and other formats are not records",
          "[deploy][converge]") {
    const Converged c;
    REQUIRE(c.seen.record);
    const auto& r = *c.seen.record;
    CHECK(r.inputs.tree == "tree1");
    CHECK(r.inputs.images.at("lab/task-api:latest") == "sha256:local1");
    CHECK(r.services.size() == 2);
    CHECK(r.services[1].completed());
    CHECK_FALSE(deploy::record_from_json("{\"format\": 2}"));
    CHECK_FALSE(deploy::record_from_json("{\"format\": 1, \"tree\": "));
    CHECK_FALSE(deploy::record_from_json("[]"));
}

TEST_CASE("the observation parser reads each section and refuses a cut-short answer",
          "[deploy][converge]") {
    const std::string out = "@@labctl-record\n{\"format\": 7}\n@@labctl-tree\nabc123\n"
                            "@@labctl-compose\nv1\n@@labctl-containers\n"
                            "c1\trunning\tUp 5 minutes (healthy)\tweb\n@@labctl-end\n";
    const auto o = deploy::parse_observation(out);
    CHECK(o.record_present);
    CHECK_FALSE(o.record); // format 7 is not ours
    CHECK(o.remote_tree == "abc123");
    CHECK(o.compose_v1);
    CHECK_FALSE(o.compose_v2);
    REQUIRE(o.containers.size() == 1);
    CHECK(o.containers[0].service == "web");
    CHECK(o.docker_answered);
    auto no_docker = out;
    no_docker.replace(no_docker.find("c1\trunning"), 0, "@@labctl-no-docker\n");
    CHECK_FALSE(deploy::parse_observation(no_docker).docker_answered);
    CHECK_THROWS_WITH(deploy::parse_observation(out.substr(0, out.find("@@labctl-end"))),
                      Catch::Contains("cut short"));
}

TEST_CASE("drift: nothing when inputs and target match the record, a sentence per difference",
          "[deploy][converge]") {
    {
        const Converged c;
        CHECK(deploy::drift(c.seen, c.inputs).empty());
    }
    struct Case {
        std::function<void(Converged&)> change;
        std::string says;
    };
    const std::vector<Case> cases{
        {[](Converged& c) {
             c.seen.record_present = false;
             c.seen.record.reset();
         },
         "no record of an earlier deploy"},
        {[](Converged& c) { c.seen.record.reset(); }, "unreadable"},
        {[](Converged& c) { c.inputs.tree = "tree2"; }, "the stack directory changed here"},
        {[](Converged& c) { c.inputs.env = "env2"; }, "variables or secrets changed"},
        {[](Converged& c) { c.inputs.labctl_version = "1.2.4"; }, "labctl changed (1.2.3 → 1.2.4)"},
        {[](Converged& c) { c.inputs.images["lab/task-api:latest"] = "sha256:local2"; },
         "image lab/task-api:latest changed here"},
        {[](Converged& c) { c.seen.remote_tree = "remote2"; }, "were changed on the target"},
        {[](Converged& c) { c.seen.remote_tree = "absent"; },
         "/opt/labctl/lab is missing on the target"},
        {[](Converged& c) { c.seen.docker_answered = false; }, "docker ps failed on the target"},
        {[](Converged& c) { c.seen.compose_v1 = false; },
         "the compose used last time (v1) is gone"},
        {[](Converged& c) { c.seen.containers[0] = container("backend", "c1", "exited", 137, ""); },
         "service backend exited with status 137"},
        {[](Converged& c) { c.seen.containers[0].health = "unhealthy"; },
         "service backend is unhealthy"},
        {[](Converged& c) { c.seen.containers.erase(c.seen.containers.begin()); },
         "service backend has no container"},
        {[](Converged& c) { c.seen.containers[0].container_id = "c9"; },
         "service backend's container was replaced"},
        // nginx exits 0 on TERM: a stopped service is drift whatever its status.
        {[](Converged& c) { c.seen.containers[0] = container("backend", "c1", "exited", 0, ""); },
         "service backend exited with status 0"},
        // A one-shot service is fine exited 0, not running again or failed.
        {[](Converged& c) { c.seen.containers[1] = container("lab-init", "c2", "exited", 1, ""); },
         "service lab-init exited with status 1"},
        {[](Converged& c) { c.seen.containers[1] = container("lab-init", "c2", "running", 0, ""); },
         "service lab-init is running"},
        {[](Converged& c) { c.seen.containers.push_back(container("stray", "c7")); },
         "service stray was not deployed by labctl"},
    };
    for (const auto& k : cases) {
        CAPTURE(k.says);
        Converged c;
        k.change(c);
        CHECK(c.says(k.says));
    }
}

TEST_CASE("the target's image ids are read from one image list, absent ones empty",
          "[deploy][preload]") {
    const std::string out = "labctl-offline/task-api:latest sha256:aaa\n"
                            "nginx:1.25 sha256:bbb\n"
                            "<none>:<none> sha256:ccc\n";
    const auto ids = deploy::parse_image_list(
        out, {"labctl-offline/task-api", "docker.io/library/nginx:1.25", "prom/prometheus:v2"});
    REQUIRE(ids.size() == 3);
    CHECK(ids[0] == "sha256:aaa");
    CHECK(ids[1] == "sha256:bbb");
    CHECK(ids[2].empty());
    CHECK(deploy::normal_image_name("registry:5000/lab/api") == "registry:5000/lab/api:latest");
    CHECK(deploy::normal_image_name("registry:5000/lab/api:2") == "registry:5000/lab/api:2");
}

TEST_CASE("only stack files changed: a changed tree alone, not with any other drift",
          "[deploy][converge]") {
    {
        Converged c;
        CHECK_FALSE(deploy::only_stack_files_changed(c.seen, c.inputs)); // nothing changed
        c.inputs.tree = "tree2";
        CHECK(deploy::only_stack_files_changed(c.seen, c.inputs));
    }
    const std::vector<std::function<void(Converged&)>> also{
        [](Converged& c) { c.inputs.compose_inputs = "ci2"; }, // docker-compose.yml or .env
        [](Converged& c) { c.inputs.env = "env2"; },
        [](Converged& c) { c.inputs.images["lab/task-api:latest"] = "sha256:local2"; },
        [](Converged& c) { c.seen.remote_tree = "remote2"; }, // edited on the target too
        [](Converged& c) { c.seen.containers[0].health = "unhealthy"; },
        [](Converged& c) { c.seen.compose_v1 = false; },
        [](Converged& c) { c.inputs.labctl_version = "1.2.4"; },
        [](Converged& c) { c.seen.record.reset(); },
    };
    for (std::size_t i = 0; i < also.size(); ++i) {
        CAPTURE(i);
        Converged c;
        c.inputs.tree = "tree2";
        also[i](c);
        CHECK_FALSE(deploy::only_stack_files_changed(c.seen, c.inputs));
    }
}

TEST_CASE("rsync's itemized changes become target paths, deletions and directories included",
          "[deploy][mounts]") {
    // rsync 3.2.7 --itemize-changes: an 11-character code (or "*deleting" padded), a space, the
    // path; directories end in '/'.
    const std::vector<std::string> itemized{
        "<f.st...... prometheus.yml", "cd+++++++++ conf.d/",        "<f+++++++++ conf.d/site.conf",
        "*deleting   old file.txt",   ".f...p..... scripts/run.sh", "short"};
    CHECK(deploy::changed_paths(itemized, "/opt/labctl/lab/") ==
          std::vector<std::string>{"/opt/labctl/lab/prometheus.yml", "/opt/labctl/lab/conf.d",
                                   "/opt/labctl/lab/conf.d/site.conf",
                                   "/opt/labctl/lab/old file.txt",
                                   "/opt/labctl/lab/scripts/run.sh"});
}

TEST_CASE("a bind mount reaches the same path, a path under it, or a path around it",
          "[deploy][mounts]") {
    CHECK(deploy::mount_reaches("/opt/lab/prometheus.yml", "/opt/lab/prometheus.yml"));
    CHECK(deploy::mount_reaches("/opt/lab/conf.d", "/opt/lab/conf.d/site.conf"));
    CHECK(deploy::mount_reaches("/opt/lab/conf.d/site.conf", "/opt/lab/conf.d"));
    CHECK_FALSE(deploy::mount_reaches("/opt/lab/conf.d", "/opt/lab/conf.d2/x"));
    CHECK_FALSE(deploy::mount_reaches("/opt/lab/prometheus.yml", "/opt/lab/prometheus.yml.bak"));
    CHECK_FALSE(deploy::mount_reaches("lab_prometheus-data", "/opt/lab/prometheus.yml"));
    CHECK_FALSE(deploy::mount_reaches("", "/opt/lab/x"));
}

TEST_CASE("the services that mount a changed file come from docker ps's mounts column",
          "[deploy][mounts]") {
    // Debian 12's docker 20.10 with --no-trunc: bind mounts by source, volumes by name; the
    // labctl.reload label before them.
    const auto states = deploy::parse_ps(
        "aaa1\trunning\tUp 5 minutes (healthy)\tprometheus\tSIGHUP\t/opt/labctl/lab/prometheus,"
        "lab_prometheus-data\n"
        "bbb2\trunning\tUp 5 minutes (healthy)\tfrontend\t\t\n"
        "ccc3\trunning\tUp 5 minutes (healthy)\tbackend\t\tlab_backend-data\n");
    REQUIRE(states.size() == 3);
    CHECK(states[0].reload_signal == "SIGHUP");
    CHECK(states[0].mounts ==
          std::vector<std::string>{"/opt/labctl/lab/prometheus", "lab_prometheus-data"});
    CHECK(states[1].mounts.empty());
    CHECK(states[1].reload_signal.empty());
    const auto hit =
        deploy::services_mounting(states, {"/opt/labctl/lab/prometheus/prometheus.yml"});
    REQUIRE(hit.size() == 1);
    CHECK(hit[0].service == "prometheus");
    CHECK(deploy::services_mounting(states, {"/opt/labctl/lab/README.md"}).empty());
}

TEST_CASE("a reload signal suffices only for files under a mounted directory", "[deploy][mounts]") {
    deploy::ServiceState s;
    s.service = "prometheus";
    s.reload_signal = "SIGHUP";
    s.mounts = {"/opt/lab/prometheus", "/opt/lab/rules.yml", "lab_prometheus-data"};
    CHECK(deploy::reload_suffices(s, {"/opt/lab/prometheus/prometheus.yml"}));
    CHECK(deploy::reload_suffices(s, {"/opt/lab/prometheus/a.yml", "/opt/lab/README.md"}));
    // The mounted file itself: the container keeps the old inode until a restart.
    CHECK_FALSE(deploy::reload_suffices(s, {"/opt/lab/rules.yml"}));
    // The mounted directory itself changed (made anew, or its mode): restart.
    CHECK_FALSE(deploy::reload_suffices(s, {"/opt/lab/prometheus"}));
    // Without the label there is nothing to send.
    s.reload_signal.clear();
    CHECK_FALSE(deploy::reload_suffices(s, {"/opt/lab/prometheus/prometheus.yml"}));
}

TEST_CASE("a compose file with a build key builds images from the stack", "[deploy][mounts]") {
    test::TempDir dir;
    dir.write("docker-compose.yml", "services:\n  web:\n    image: busybox\n"
                                    "    # build: . is a comment here\n");
    dir.write("prometheus.yml", "  build: not a compose file\n");
    CHECK_FALSE(deploy::compose_builds_images(dir.path().string()));
    dir.write("docker-compose.override.yml", "services:\n  web:\n    build:\n      context: .\n");
    CHECK(deploy::compose_builds_images(dir.path().string()));
}
