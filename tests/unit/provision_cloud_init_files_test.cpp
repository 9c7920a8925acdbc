// cloud_init_done_from_files against the shapes cloud-init writes: 22.4.2 (Debian 12) and the
// newer "recoverable_errors" of 23.4+ (canonical/cloud-init@23.4:cloudinit/cmd/main.py), which
// only cloud-init itself may judge (degraded, exit 2).

#include <catch2/catch.hpp>

#include <labctl/provision/wait.hpp>

using labctl::provision::cloud_init_done_from_files;

namespace {
const std::string k_result = R"({"v1": {"datasource": "DataSourceNoCloud", "errors": []}})";
const std::string k_done = R"({"v1": {"datasource": "DataSourceNoCloud",
 "init": {"errors": [], "finished": 10.5, "start": 9.0},
 "modules-final": {"errors": [], "finished": 20.0, "start": 19.0},
 "modules-init": {"errors": [], "finished": null, "start": null}, "stage": null}})";
} // namespace

TEST_CASE("cloud-init's files say done only when every stage finished without errors",
          "[provision][cloud-init]") {
    CHECK(cloud_init_done_from_files(k_done, k_result));
    CHECK_FALSE(cloud_init_done_from_files(k_done, ""));
    CHECK_FALSE(cloud_init_done_from_files("", k_result));
    std::string running = k_done;
    running.replace(running.find("\"stage\": null"), 13, "\"stage\": \"modules-final\"");
    CHECK_FALSE(cloud_init_done_from_files(running, k_result));
    CHECK_FALSE(
        cloud_init_done_from_files(k_done, R"({"v1": {"datasource": "x", "errors": ["failed"]}})"));
    const std::string degraded = R"({"v1": {"init": {"errors": [], "recoverable_errors":
 {"WARNING": ["deprecated key"]}, "finished": 10.5, "start": 9.0}, "stage": null}})";
    CHECK_FALSE(cloud_init_done_from_files(degraded, k_result));
    const std::string empty_recoverable = R"({"v1": {"init": {"errors": [],
 "recoverable_errors": {}, "finished": 10.5, "start": 9.0}, "stage": null}})";
    CHECK(cloud_init_done_from_files(empty_recoverable, k_result));
    const std::string never_ran = R"({"v1": {"init": {"errors": [], "finished": null,
 "start": null}, "stage": null}})";
    CHECK_FALSE(cloud_init_done_from_files(never_ran, k_result));
    CHECK_FALSE(cloud_init_done_from_files("[1, 2]", k_result));
}
