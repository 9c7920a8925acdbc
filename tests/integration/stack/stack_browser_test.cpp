// Browser tracing end to end, on loopback: the real nginx (the shipped default.conf rendered for
// 127.0.0.1) serves the esbuild bundle and proxies /api to the real task API and /otlp to an OTLP
// sink, which also receives the task API's own spans. Headless Chromium (Debian's
// /usr/bin/chromium via playwright-core) uses the page; then the sink must hold browser spans and
// the task API's SERVER span for the POST must be a child of the browser's fetch span.

#include <catch2/catch.hpp>
#include <iostream>

#include <labctl/core/process.hpp>

#include "harness.hpp"
#include "skip.hpp"
#include "stack_support.hpp"

using namespace labctl::test::stack;
namespace fs = std::filesystem;
using labctl::test::taskapi::ApiProcess;
using labctl::test::taskapi::TempDir;
using namespace std::chrono_literals;

namespace {

constexpr int k_kind_server = 2;
constexpr int k_kind_client = 3;

/// Where the screenshot and the node script's result go: kept after the test.
fs::path output_dir() {
    const auto dir = fs::path(LABCTL_STACK_BINARY_DIR) / "browser-output";
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

} // namespace

TEST_CASE("stack browser: page actions in headless Chromium produce browser spans that parent "
          "the task API's spans",
          "[stack][browser]") {
    const std::string bundle = STACK_BUNDLE_DIR;
    const std::string node_modules = STACK_BROWSER_NODE_MODULES;
    if (bundle.empty() || !fs::exists(fs::path(bundle) / "app.js")) {
        labctl::test::skip("the frontend bundle was not built (needs node and npm at build time)");
    }
    if (!fs::exists(fs::path(node_modules) / "playwright-core")) {
        labctl::test::skip("playwright-core is not installed in the build tree (npm ci failed?)");
    }
    if (!fs::exists("/usr/bin/chromium")) {
        labctl::test::skip("/usr/bin/chromium is missing (Debian package chromium)");
    }
    if (!labctl::find_program("nginx")) {
        labctl::test::skip("nginx is not installed");
    }

    TempDir dir;
    const auto out = output_dir();
    OtlpSink sink;
    ApiProcess api(dir.path() / "tasks.db", out / "taskapi.log",
                   {{"OTEL_SDK_DISABLED", "false"},
                    {"OTEL_EXPORTER_OTLP_ENDPOINT", sink.endpoint()},
                    {"OTEL_BSP_SCHEDULE_DELAY", "200"},
                    {"OTEL_SERVICE_NAME", "task-api"}});
    const auto port = static_cast<std::uint16_t>(labctl::test::taskapi::free_port());
    Nginx nginx(dir.path() / "nginx", render_nginx_server(port, api.port(), sink.port(), bundle),
                port);

    // The node script lives in the source tree; its node_modules in the build tree (ESM resolves
    // packages from the script's directory upwards, so a symlink next to a copy of it).
    const auto script_dir = dir.path() / "browser";
    fs::create_directories(script_dir);
    fs::copy_file(source_dir() / "tests" / "browser" / "page_test.mjs",
                  script_dir / "page_test.mjs");
    fs::copy_file(source_dir() / "tests" / "browser" / "package.json", script_dir / "package.json");
    fs::create_directory_symlink(node_modules, script_dir / "node_modules");

    labctl::ProcessOptions opts;
    opts.timeout = 120s;
    opts.cwd = script_dir.string();
    const auto run = labctl::run_process({"node", (script_dir / "page_test.mjs").string(), "--url",
                                          "http://127.0.0.1:" + std::to_string(port) + "/", "--out",
                                          out.string(), "--chromium", "/usr/bin/chromium"},
                                         opts);
    INFO("node exit " << run.exit_code << "\nstdout: " << run.out << "\nstderr: " << run.err
                      << "\nnginx: " << nginx.error_log());
    REQUIRE(run.exit_code == 0);
    const auto lines = run.out.substr(0, run.out.find_last_not_of('\n') + 1);
    const auto result = nlohmann::json::parse(lines.substr(lines.rfind('\n') + 1));
    REQUIRE(result["ok"] == true);
    CHECK(result["offHostRequests"].empty());
    CHECK(result["title"] == "Task Manager · Observability Lab");
    CHECK(fs::file_size(result["screenshot"].get<std::string>()) > 10000);

    // Every /api call carried a W3C traceparent.
    REQUIRE(result["apiRequests"].size() >= 10);
    for (const auto& r : result["apiRequests"]) {
        INFO(r.dump());
        REQUIRE(r["traceparent"].is_string());
        CHECK(r["traceparent"].get<std::string>().size() == 55);
    }
    const auto traceparent = result["post"]["traceparent"].get<std::string>();
    REQUIRE(result["post"]["status"] == 201);
    const auto trace_id = traceparent.substr(3, 32);
    const auto fetch_span_id = traceparent.substr(36, 16);
    // The list reload after the POST (a fetch after an `await`) is still in the add-task trace:
    // the zone context survives await in the es2016 bundle.
    bool reload_in_trace = false;
    for (const auto& r : result["apiRequests"]) {
        reload_in_trace =
            reload_in_trace || (r["method"] == "GET" && r["path"] == "/api/tasks" &&
                                r["traceparent"].get<std::string>().substr(3, 32) == trace_id);
    }
    CHECK(reload_in_trace);

    // The sink holds: the browser's fetch span for the POST (service task-frontend, JSON over
    // nginx /otlp/), and the task API's SERVER span for it (protobuf, direct) as its child.
    const auto has_pair = [&](const std::vector<SpanRecord>& spans) {
        bool browser = false;
        bool server = false;
        for (const auto& s : spans) {
            browser = browser || (s.service == "task-frontend" && s.span_id == fetch_span_id);
            server = server || (s.service == "task-api" && s.kind == k_kind_server &&
                                s.parent_id == fetch_span_id);
        }
        return browser && server;
    };
    const bool found = sink.wait_for(has_pair, 20s);
    const auto spans = sink.spans();
    std::size_t browser_spans = 0;
    for (const auto& s : spans) {
        browser_spans += s.service == "task-frontend" ? 1 : 0;
    }
    INFO("sink: " << spans.size() << " spans, " << browser_spans << " from the browser, "
                  << sink.bad_requests() << " bad requests; POST traceparent " << traceparent);
    REQUIRE(found);
    CHECK(sink.bad_requests() == 0);

    const SpanRecord* fetch = nullptr;
    const SpanRecord* server = nullptr;
    for (const auto& s : spans) {
        if (s.service == "task-frontend" && s.span_id == fetch_span_id) {
            fetch = &s;
        }
        if (s.service == "task-api" && s.kind == k_kind_server && s.parent_id == fetch_span_id) {
            server = &s;
        }
    }
    REQUIRE(fetch != nullptr);
    REQUIRE(server != nullptr);
    CHECK(fetch->encoding == "json");
    CHECK(fetch->kind == k_kind_client);
    CHECK(fetch->trace_id == trace_id);
    CHECK(server->encoding == "protobuf");
    CHECK(server->trace_id == trace_id);
    CHECK(server->name == "POST /api/tasks");
    CHECK(server->attributes.at("http.response.status_code") == "201");
    // The fetch span itself is the child of the page's "add-task" user-action span.
    bool action_parent = false;
    for (const auto& s : spans) {
        action_parent = action_parent || (s.service == "task-frontend" && s.name == "add-task" &&
                                          s.span_id == fetch->parent_id && s.trace_id == trace_id);
    }
    CHECK(action_parent);
    // And the INSERT below the SERVER span is in the same trace.
    bool insert = false;
    for (const auto& s : spans) {
        insert = insert || (s.service == "task-api" && s.kind == k_kind_client &&
                            s.parent_id == server->span_id && s.trace_id == trace_id);
    }
    CHECK(insert);
    // Every user action produced its span.
    for (const char* action : {"add-task", "toggle-task", "delete-task", "simulate-error",
                               "simulate-slow", "bulk-create", "db-smoke"}) {
        bool seen = false;
        for (const auto& s : spans) {
            seen = seen || (s.service == "task-frontend" && s.name == action);
        }
        INFO(action);
        CHECK(seen);
    }
    std::cout << "browser test: trace " << trace_id << ", browser fetch span " << fetch_span_id
              << " -> task-api SERVER span " << server->span_id << " (" << server->name << "); "
              << browser_spans << " browser spans; screenshot "
              << result["screenshot"].get<std::string>() << "\n";
}
