// Contract of the task API over real HTTP on loopback (STACK.md §2): every route and error case,
// concurrency, a hostile input corpus, metrics hygiene and graceful shutdown.

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <sqlite3.h>

#include <atomic>
#include <barrier>
#include <catch2/catch.hpp>
#include <regex>
#include <set>
#include <thread>

#include <labctl/core/process.hpp>

#include "harness.hpp"
#include "skip.hpp"

using namespace labctl::test::taskapi;

namespace {

const std::string k_json = "application/json";

struct Api {
    TempDir dir;
    ApiProcess process{dir.path() / "tasks.db", dir.path() / "api.log"};
    std::uint16_t port() const { return process.port(); }
};

void require_error_body(const HttpResult& r) {
    INFO("status " << r.status << " body: " << r.body);
    REQUIRE(r.header("content-type").rfind("application/json", 0) == 0);
    const auto j = r.json();
    REQUIRE(j.is_object());
    REQUIRE(j.contains("error"));
    REQUIRE(j["error"].is_string());
    REQUIRE_FALSE(j["error"].get<std::string>().empty());
}

void require_task_shape(const nlohmann::json& t) {
    INFO(t.dump());
    REQUIRE(t.is_object());
    REQUIRE(t.size() == 5);
    REQUIRE(t["id"].is_number_integer());
    REQUIRE(t["title"].is_string());
    REQUIRE((t["description"].is_string() || t["description"].is_null()));
    REQUIRE(t["completed"].is_boolean());
    static const std::regex iso(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z)");
    REQUIRE(std::regex_match(t["created_at"].get<std::string>(), iso));
}

} // namespace

TEST_CASE("taskapi contract: health checks the database", "[taskapi]") {
    Api api;
    auto r = http(api.port(), "GET", "/health");
    REQUIRE(r.status == 200);
    REQUIRE(r.header("content-type").rfind("application/json", 0) == 0);
    REQUIRE(r.json()["status"] == "healthy");
    REQUIRE(r.json()["timestamp"].is_string());

    // Make the database unusable: the tasks table disappears behind the service's back.
    {
        const auto db = api.dir.path() / "tasks.db";
        sqlite3* handle = nullptr;
        REQUIRE(sqlite3_open(db.c_str(), &handle) == SQLITE_OK);
        sqlite3_busy_timeout(handle, 5000);
        const int rc = sqlite3_exec(handle, "DROP TABLE tasks", nullptr, nullptr, nullptr);
        sqlite3_close(handle);
        REQUIRE(rc == SQLITE_OK);
    }
    r = http(api.port(), "GET", "/health");
    REQUIRE(r.status == 503);
    require_error_body(r);
    REQUIRE(r.json()["status"] == "unhealthy");
}

TEST_CASE("taskapi contract: task CRUD round trip", "[taskapi]") {
    Api api;
    const auto p = api.port();

    auto r = http(p, "GET", "/api/tasks");
    REQUIRE(r.status == 200);
    REQUIRE(r.json() == nlohmann::json::parse(R"({"tasks":[],"count":0})"));

    r = http(p, "POST", "/api/tasks", R"({"title":"first","description":"d1"})", k_json);
    REQUIRE(r.status == 201);
    auto first = r.json();
    require_task_shape(first);
    REQUIRE(first["title"] == "first");
    REQUIRE(first["description"] == "d1");
    REQUIRE(first["completed"] == false);

    r = http(p, "POST", "/api/tasks", R"({"title":"second","completed":true})",
             "application/json; charset=utf-8");
    REQUIRE(r.status == 201);
    auto second = r.json();
    require_task_shape(second);
    REQUIRE(second["description"].is_null());
    REQUIRE(second["completed"] == true);
    REQUIRE(second["id"].get<long>() > first["id"].get<long>());

    // Unicode and SQL-looking text are stored verbatim (parameterised statements).
    const std::string tricky = "Ünïcødé ✓ 🚀 '); DROP TABLE tasks;-- \" \\ \n";
    nlohmann::json body = {{"title", tricky}, {"description", "x' OR '1'='1"}};
    r = http(p, "POST", "/api/tasks", body.dump(), k_json);
    REQUIRE(r.status == 201);
    const auto third = r.json();
    REQUIRE(third["title"] == tricky);
    // Exactly 200 code points (multi-byte) is allowed.
    std::string two_hundred;
    for (int i = 0; i < 200; ++i) {
        two_hundred += "é";
    }
    r = http(p, "POST", "/api/tasks", nlohmann::json({{"title", two_hundred}}).dump(), k_json);
    REQUIRE(r.status == 201);
    const auto fourth = r.json();

    r = http(p, "GET", "/api/tasks");
    REQUIRE(r.status == 200);
    auto list = r.json();
    REQUIRE(list["count"] == 4);
    REQUIRE(list["tasks"].size() == 4);
    // Newest first.
    REQUIRE(list["tasks"][0]["id"] == fourth["id"]);
    REQUIRE(list["tasks"][3]["id"] == first["id"]);
    for (const auto& t : list["tasks"]) {
        require_task_shape(t);
    }

    const std::string first_path = "/api/tasks/" + std::to_string(first["id"].get<long>());
    r = http(p, "GET", first_path);
    REQUIRE(r.status == 200);
    REQUIRE(r.json() == first);
    r = http(p, "GET", "/api/tasks/" + std::to_string(third["id"].get<long>()));
    REQUIRE(r.json()["description"] == "x' OR '1'='1");

    // PUT: any subset of fields.
    r = http(p, "PUT", first_path, R"({"completed":true})", k_json);
    REQUIRE(r.status == 200);
    REQUIRE(r.json()["completed"] == true);
    REQUIRE(r.json()["title"] == "first");
    REQUIRE(r.json()["description"] == "d1");
    r = http(p, "PUT", first_path, R"({"title":"renamed","description":null})", k_json);
    REQUIRE(r.status == 200);
    REQUIRE(r.json()["title"] == "renamed");
    REQUIRE(r.json()["description"].is_null());
    REQUIRE(r.json()["completed"] == true);
    REQUIRE(r.json()["created_at"] == first["created_at"]);

    // DELETE, then 404 everywhere.
    r = http(p, "DELETE", first_path);
    REQUIRE(r.status == 200);
    REQUIRE(r.json() == nlohmann::json::parse(R"({"message":"Task deleted successfully"})"));
    for (const auto& [m, b] : std::vector<std::pair<std::string, std::string>>{
             {"GET", ""}, {"DELETE", ""}, {"PUT", R"({"title":"x"})"}}) {
        r = http(p, m, first_path, b, b.empty() ? "" : k_json);
        INFO(m);
        REQUIRE(r.status == 404);
        REQUIRE(r.json() == nlohmann::json::parse(R"({"error":"Task not found"})"));
    }
    REQUIRE(http(p, "GET", "/api/tasks").json()["count"] == 3);

    // A commit by another process is visible at once (the list cache follows data_version).
    {
        sqlite3* handle = nullptr;
        REQUIRE(sqlite3_open((api.dir.path() / "tasks.db").c_str(), &handle) == SQLITE_OK);
        sqlite3_busy_timeout(handle, 5000);
        const int rc = sqlite3_exec(handle,
                                    "INSERT INTO tasks (title, completed, created_at) VALUES "
                                    "('external', 0, '2026-01-01T00:00:00.000Z')",
                                    nullptr, nullptr, nullptr);
        sqlite3_close(handle);
        REQUIRE(rc == SQLITE_OK);
    }
    list = http(p, "GET", "/api/tasks").json();
    REQUIRE(list["count"] == 4);
    REQUIRE(list["tasks"][0]["title"] == "external");
}

TEST_CASE("taskapi contract: validation errors name the field", "[taskapi]") {
    Api api;
    const auto p = api.port();
    const auto id = http(p, "POST", "/api/tasks", R"({"title":"t"})", k_json).json()["id"];
    const std::string task_path = "/api/tasks/" + std::to_string(id.get<long>());

    const std::vector<std::pair<std::string, std::string>> post_cases = {
        {R"({})", "title"},
        {R"({"description":"no title"})", "title"},
        {R"({"title":""})", "title"},
        {R"({"title":"  "})", "title"},
        {R"({"title":42})", "title"},
        {R"({"title":null})", "title"},
        {nlohmann::json({{"title", std::string(201, 'x')}}).dump(), "title"},
        {R"({"title":"ok","description":7})", "description"},
        {R"({"title":"ok","completed":"yes"})", "completed"},
        {R"({"title":"ok","completed":0})", "completed"},
    };
    for (const auto& [body, field] : post_cases) {
        const auto r = http(p, "POST", "/api/tasks", body, k_json);
        INFO(body << " -> " << r.body);
        REQUIRE(r.status == 400);
        require_error_body(r);
        REQUIRE(r.json()["error"].get<std::string>().find(field) != std::string::npos);
    }
    const std::vector<std::pair<std::string, std::string>> put_cases = {
        {R"({})", "title"},
        {R"({"title":""})", "title"},
        {R"({"completed":"no"})", "completed"},
        {R"({"description":[]})", "description"},
    };
    for (const auto& [body, field] : put_cases) {
        const auto r = http(p, "PUT", task_path, body, k_json);
        INFO(body << " -> " << r.body);
        REQUIRE(r.status == 400);
        require_error_body(r);
        REQUIRE(r.json()["error"].get<std::string>().find(field) != std::string::npos);
    }
    // Nothing changed.
    REQUIRE(http(p, "GET", "/api/tasks").json()["count"] == 1);
}

TEST_CASE("taskapi contract: 404 405 413 and 415 answers are JSON", "[taskapi]") {
    Api api;
    const auto p = api.port();

    for (const std::string path : {"/", "/nope", "/api", "/api/tasks/", "/api/tasks/1/x",
                                   "/API/TASKS", "/health/x", "/metrics/"}) {
        const auto r = http(p, "GET", path);
        INFO(path);
        REQUIRE(r.status == 404);
        require_error_body(r);
    }
    for (const auto& [method, path, allow] :
         std::vector<std::tuple<std::string, std::string, std::string>>{
             {"DELETE", "/api/tasks", "GET, POST"},
             {"PATCH", "/api/tasks/1", "GET, PUT, DELETE"},
             {"POST", "/api/simulate-error", "GET"},
             {"GET", "/api/smoke/db", "POST"},
             {"POST", "/health", "GET"},
             {"PUT", "/metrics", "GET"}}) {
        const auto r = http(p, method, path);
        INFO(method << " " << path);
        REQUIRE(r.status == 405);
        require_error_body(r);
        REQUIRE(r.header("allow") == allow);
    }

    // 415: not JSON.
    for (const std::string ct : {"", "text/plain", "application/x-www-form-urlencoded",
                                 "application/jsonp", "multipart/form-data; boundary=x"}) {
        const auto r = http(p, "POST", "/api/tasks", R"({"title":"x"})", ct);
        INFO("content-type '" << ct << "'");
        REQUIRE(r.status == 415);
        require_error_body(r);
    }
    REQUIRE(http(p, "PUT", "/api/tasks/1", R"({"title":"x"})", "text/plain").status == 415);

    // 413: over the 64 KiB body limit, declared or streamed (chunked).
    const std::string big = R"({"title":"x","description":")" + std::string(70 * 1024, 'a') + "\"}";
    auto r = http(p, "POST", "/api/tasks", big, k_json);
    REQUIRE(r.status == 413);
    require_error_body(r);
    r = http(p, "PUT", "/api/tasks/1", big, k_json);
    REQUIRE(r.status == 413);
    std::string chunked =
        "POST /api/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 70; ++i) {
        chunked += "400\r\n" + std::string(1024, ' ') + "\r\n";
    }
    chunked += "0\r\n\r\n";
    r = raw_http(p, chunked);
    REQUIRE(r.status == 413);
    require_error_body(r);
    REQUIRE(http(p, "GET", "/api/tasks").json()["count"] == 0);
}

TEST_CASE("taskapi contract: simulate-error and simulate-slow and the DB smoke test", "[taskapi]") {
    Api api;
    const auto p = api.port();

    auto r = http(p, "GET", "/api/simulate-error");
    REQUIRE(r.status == 500);
    REQUIRE(r.json() == nlohmann::json::parse(R"({"error":"This is a simulated error"})"));

    r = http(p, "GET", "/api/simulate-slow?delay=0.3");
    REQUIRE(r.status == 200);
    REQUIRE(r.seconds >= 0.3);
    REQUIRE(r.seconds < 2.0);
    REQUIRE(r.json()["delay_seconds"].get<double>() == Approx(0.3));
    r = http(p, "GET", "/api/simulate-slow?delay=0");
    REQUIRE(r.status == 200);
    for (const std::string bad : {"-1", "abc", "1e3", "inf", "nan", "", "0x10", "1.2.3", "%zz"}) {
        r = http(p, "GET", "/api/simulate-slow?delay=" + bad);
        INFO("delay=" << bad);
        REQUIRE(r.status == 400);
        require_error_body(r);
        REQUIRE(r.json()["error"].get<std::string>().find("delay") != std::string::npos);
    }

    http(p, "POST", "/api/tasks", R"({"title":"keep"})", k_json);
    for (const auto& [type, reads, writes] : std::vector<std::tuple<std::string, int, int>>{
             {"read", 5, 0}, {"write", 0, 5}, {"rw", 3, 2}}) {
        r = http(p, "POST", "/api/smoke/db?ops=5&type=" + type);
        INFO(type << ": " << r.body);
        REQUIRE(r.status == 200);
        const auto j = r.json();
        REQUIRE(j["ok"] == true);
        REQUIRE(j["requested_ops"] == 5);
        REQUIRE(j["performed"]["read"] == reads);
        REQUIRE(j["performed"]["write"] == writes);
    }
    r = http(p, "POST", "/api/smoke/db?ops=1000&type=write");
    REQUIRE(r.status == 200);
    REQUIRE(r.json()["performed"]["write"] == 1000);
    // Smoke writes were rolled back.
    REQUIRE(http(p, "GET", "/api/tasks").json()["count"] == 1);
    for (const std::string q :
         {"ops=0", "ops=-5", "ops=1001", "ops=abc", "ops=99999999999999999999", "type=drop",
          "type=", "ops=5&type=READ"}) {
        r = http(p, "POST", "/api/smoke/db?" + q);
        INFO(q);
        REQUIRE(r.status == 400);
        require_error_body(r);
    }
}

TEST_CASE("taskapi contract: metrics exposition and SLI hygiene", "[taskapi]") {
    Api api;
    const auto p = api.port();
    http(p, "POST", "/api/tasks", R"({"title":"a"})", k_json);
    http(p, "GET", "/api/tasks/1");
    http(p, "GET", "/api/tasks/2");
    http(p, "GET", "/api/simulate-error");
    for (int i = 0; i < 5; ++i) {
        REQUIRE(http(p, "GET", "/health").status == 200);
        REQUIRE(http(p, "GET", "/metrics").status == 200);
    }
    const auto r = http(p, "GET", "/metrics");
    REQUIRE(r.status == 200);
    REQUIRE(r.header("content-type") == "text/plain; version=0.0.4; charset=utf-8");
    const std::string& m = r.body;

    REQUIRE(metric_sum(m, "http_requests_total",
                       {R"(endpoint="/api/tasks")", R"(method="POST")", R"(status_code="201")"}) ==
            1);
    // Route templates, never raw paths.
    REQUIRE(metric_sum(m, "http_requests_total", {R"(endpoint="/api/tasks/{id}")"}) == 2);
    REQUIRE(m.find(R"(endpoint="/api/tasks/1")") == std::string::npos);
    REQUIRE(metric_sum(m, "http_errors_total",
                       {R"(endpoint="/api/tasks/{id}")", R"(status_code="404")"}) == 1);
    REQUIRE(metric_sum(m, "http_errors_total",
                       {R"(endpoint="/api/simulate-error")", R"(status_code="500")"}) == 1);
    REQUIRE(metric_sum(m, "http_request_duration_seconds_count", {R"(endpoint="/api/tasks")"}) ==
            1);
    // Probes and scrapes are not SLI traffic.
    REQUIRE(m.find(R"(endpoint="/health")") == std::string::npos);
    REQUIRE(m.find(R"(endpoint="/metrics")") == std::string::npos);
    // Buckets exactly as specified.
    for (const std::string le :
         {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"}) {
        INFO(le);
        REQUIRE(series_count(m, "http_request_duration_seconds_bucket",
                             {R"(endpoint="/api/tasks")", "le=\"" + le + "\""}) == 1);
    }
    for (const std::string le :
         {"0.002", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2", "+Inf"}) {
        INFO(le);
        REQUIRE(series_count(m, "db_query_duration_seconds_bucket",
                             {R"(operation="INSERT")", "le=\"" + le + "\""}) == 1);
    }
    REQUIRE(metric_sum(m, "db_query_duration_seconds_count", {R"(operation="SELECT")"}) >= 2);
    // Exactly the specified buckets (11 + Inf for HTTP, 10 + Inf for DB).
    REQUIRE(series_count(m, "http_request_duration_seconds_bucket", {R"(endpoint="/api/tasks")"}) ==
            12);
    REQUIRE(series_count(m, "db_query_duration_seconds_bucket", {R"(operation="INSERT")"}) == 11);
    REQUIRE(m.find("otel_export_dropped_total{signal=\"traces\"} 0") != std::string::npos);

    // promtool's linter accepts the live exposition.
    if (!labctl::find_program("promtool")) {
        labctl::test::skip("promtool missing (scripts/install-deps installs prometheus)");
    }
    labctl::ProcessOptions opts;
    opts.stdin_data = m;
    opts.timeout = std::chrono::seconds(30);
    const auto check = labctl::run_process({"promtool", "check", "metrics"}, opts);
    INFO(check.out << check.err);
    REQUIRE(check.exit_code == 0);
}

TEST_CASE("taskapi contract: 64 concurrent POSTs are all acknowledged and stored", "[taskapi]") {
    Api api;
    const auto p = api.port();
    constexpr int k_clients = 64;
    std::vector<int> statuses(k_clients, 0);
    std::vector<long> ids(k_clients, 0);
    std::barrier sync(k_clients);
    std::vector<std::thread> threads;
    for (int i = 0; i < k_clients; ++i) {
        threads.emplace_back([&, i] {
            sync.arrive_and_wait();
            try {
                const auto r = http(
                    p, "POST", "/api/tasks",
                    nlohmann::json({{"title", "concurrent " + std::to_string(i)}}).dump(), k_json);
                statuses[static_cast<std::size_t>(i)] = r.status;
                if (r.status == 201) {
                    ids[static_cast<std::size_t>(i)] = r.json()["id"].get<long>();
                }
            } catch (...) {
                statuses[static_cast<std::size_t>(i)] = -1;
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    for (int i = 0; i < k_clients; ++i) {
        INFO("client " << i);
        REQUIRE(statuses[static_cast<std::size_t>(i)] == 201);
    }
    REQUIRE(std::set<long>(ids.begin(), ids.end()).size() == k_clients);
    const auto list = http(p, "GET", "/api/tasks").json();
    REQUIRE(list["count"] == k_clients);
    std::set<std::string> titles;
    for (const auto& t : list["tasks"]) {
        titles.insert(t["title"].get<std::string>());
    }
    for (int i = 0; i < k_clients; ++i) {
        REQUIRE(titles.count("concurrent " + std::to_string(i)) == 1);
    }
}

TEST_CASE("taskapi contract: a keep-alive connection serves many requests without reconnecting",
          "[taskapi]") {
    Api api;
    Poco::Net::HTTPClientSession session(std::string(k_loopback), api.port());
    session.setKeepAlive(true);
    session.setTimeout(Poco::Timespan(5, 0));
    // HTTPClientSession reconnects silently when the server has closed: a new local port would
    // show that the connection was not reused.
    std::optional<std::uint16_t> local_port;
    for (int i = 0; i < 60; ++i) {
        const bool post = i % 3 == 0;
        Poco::Net::HTTPRequest request(post ? "POST" : "GET", "/api/tasks",
                                       Poco::Net::HTTPMessage::HTTP_1_1);
        request.setKeepAlive(true);
        const std::string body = R"({"title":"keep-alive )" + std::to_string(i) + R"("})";
        if (post) {
            request.setContentType(k_json);
            request.setContentLength64(static_cast<Poco::Int64>(body.size()));
        }
        std::ostream& out = session.sendRequest(request);
        if (post) {
            out << body;
        }
        Poco::Net::HTTPResponse response;
        std::istream& in = session.receiveResponse(response);
        std::string answer;
        Poco::StreamCopier::copyToString(in, answer);
        INFO("request " << i << ": " << answer);
        REQUIRE(static_cast<int>(response.getStatus()) == (post ? 201 : 200));
        CHECK(response.getKeepAlive());
        const auto port = session.socket().address().port();
        if (!local_port) {
            local_port = port;
        }
        REQUIRE(port == *local_port);
    }
    // All 20 POSTs arrived once each.
    CHECK(http(api.port(), "GET", "/api/tasks").json()["count"] == 20);
}

TEST_CASE("taskapi contract: SIGTERM finishes in-flight requests and exits 0", "[taskapi]") {
    TempDir dir;
    ApiProcess api(dir.path() / "tasks.db", dir.path() / "api.log");
    const auto p = api.port();
    REQUIRE(http(p, "POST", "/api/tasks", R"({"title":"before"})", k_json).status == 201);

    // A request beyond the cap (capped at 10 s) is in flight when SIGTERM arrives.
    HttpResult slow;
    std::thread client([&] { slow = http(p, "GET", "/api/simulate-slow?delay=100"); });
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const auto start = std::chrono::steady_clock::now();
    const auto code = api.terminate(std::chrono::seconds(12));
    const double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    client.join();
    INFO(api.log_text());
    REQUIRE(code.has_value());
    REQUIRE(*code == 0);
    REQUIRE(took < 10.0);
    REQUIRE(slow.status == 200); // finished, not cut off
    REQUIRE(slow.json()["delay_seconds"].get<double>() == Approx(10.0));
    REQUIRE(api.log_text().find("\"message\":\"server stopped\"") != std::string::npos);

    // The data is still there on the next start.
    ApiProcess again(dir.path() / "tasks.db", dir.path() / "api2.log");
    REQUIRE(http(again.port(), "GET", "/api/tasks").json()["count"] == 1);
}

namespace {

std::string post_raw(const std::string& target, const std::string& body,
                     const std::string& content_type = "application/json") {
    std::string req = "POST " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    if (!content_type.empty()) {
        req += "Content-Type: " + content_type + "\r\n";
    }
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
    return req;
}

std::string get_raw(const std::string& target, const std::string& extra_headers = {},
                    const std::string& method = "GET") {
    return method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra_headers + "\r\n";
}

} // namespace

TEST_CASE("taskapi contract: hostile input corpus gets 4xx JSON and the server survives",
          "[taskapi]") {
    Api api;
    const auto p = api.port();
    REQUIRE(http(p, "POST", "/api/tasks", R"({"title":"existing"})", k_json).status == 201);

    std::string deep;
    for (int i = 0; i < 5000; ++i) {
        deep += "[";
    }
    std::string deep_obj = R"({"title":"x","a":)";
    for (int i = 0; i < 100; ++i) {
        deep_obj += R"({"b":)";
    }
    deep_obj += "1" + std::string(100, '}') + "}";
    std::string many_headers;
    for (int i = 0; i < 200; ++i) {
        many_headers += "X-H" + std::to_string(i) + ": v\r\n";
    }
    std::string big_chunks;
    for (int i = 0; i < 80; ++i) {
        big_chunks += "400\r\n" + std::string(1024, 'a') + "\r\n";
    }

    const std::vector<std::pair<std::string, std::string>> corpus = {
        {"truncated JSON", post_raw("/api/tasks", R"({"title":)")},
        {"lone brace", post_raw("/api/tasks", "{")},
        {"empty body", post_raw("/api/tasks", "")},
        {"whitespace body", post_raw("/api/tasks", "  \n ")},
        {"array body", post_raw("/api/tasks", R"([{"title":"x"}])")},
        {"string body", post_raw("/api/tasks", R"("title")")},
        {"null body", post_raw("/api/tasks", "null")},
        {"number body", post_raw("/api/tasks", "12345678901234567890")},
        {"trailing garbage", post_raw("/api/tasks", R"({"title":"x"} garbage)")},
        {"comment", post_raw("/api/tasks", R"({"title":"x" /* c */})")},
        {"single quotes", post_raw("/api/tasks", "{'title':'x'}")},
        {"bare word", post_raw("/api/tasks", R"({"title":"x","completed":tru})")},
        {"title number", post_raw("/api/tasks", R"({"title":1e999})")},
        {"title array", post_raw("/api/tasks", R"({"title":["x"]})")},
        {"title object", post_raw("/api/tasks", R"({"title":{"x":1}})")},
        {"title too long",
         post_raw("/api/tasks", "{\"title\":\"" + std::string(5000, 'x') + "\"}")},
        {"description too long", post_raw("/api/tasks", "{\"title\":\"x\",\"description\":\"" +
                                                            std::string(20000, 'y') + "\"}")},
        {"completed string", post_raw("/api/tasks", R"({"title":"x","completed":"true"})")},
        {"completed null", post_raw("/api/tasks", R"({"title":"x","completed":null})")},
        {"invalid UTF-8", post_raw("/api/tasks", "{\"title\":\"\xff\xfe\"}")},
        {"overlong UTF-8", post_raw("/api/tasks", "{\"title\":\"\xc0\xaf\"}")},
        {"UTF-16 surrogate bytes", post_raw("/api/tasks", "{\"title\":\"\xed\xa0\x80\"}")},
        {"NUL byte", post_raw("/api/tasks", std::string("{\"title\":\"a\0b\"}", 15))},
        {"deep arrays", post_raw("/api/tasks", deep)},
        {"deep objects", post_raw("/api/tasks", deep_obj)},
        {"no content type", post_raw("/api/tasks", R"({"title":"x"})", "")},
        {"text/plain", post_raw("/api/tasks", R"({"title":"x"})", "text/plain")},
        {"json lookalike type", post_raw("/api/tasks", R"({"title":"x"})", "application/json5")},
        {"huge declared length",
         "POST /api/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
         "Content-Length: 100000000000\r\n\r\n{"},
        {"negative length",
         "POST /api/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
         "Content-Length: -5\r\n\r\n{}"},
        {"huge chunked body",
         "POST /api/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
         "Transfer-Encoding: chunked\r\n\r\n" +
             big_chunks + "0\r\n\r\n"},
        {"bad chunk size",
         "POST /api/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
         "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"},
        {"PUT empty object", "PUT /api/tasks/1 HTTP/1.1\r\nHost: x\r\nContent-Type: "
                             "application/json\r\nContent-Length: 2\r\n\r\n{}"},
        {"PUT non-numeric id", "PUT /api/tasks/abc HTTP/1.1\r\nHost: x\r\nContent-Type: "
                               "application/json\r\nContent-Length: 13\r\n\r\n{\"title\":\"x\"}"},
        {"negative id", get_raw("/api/tasks/-1")},
        {"zero id", get_raw("/api/tasks/0")},
        {"overflowing id", get_raw("/api/tasks/99999999999999999999999")},
        {"INT64_MAX+1 id", get_raw("/api/tasks/9223372036854775808")},
        {"float id", get_raw("/api/tasks/1.5")},
        {"hex id", get_raw("/api/tasks/0x1")},
        {"injection id", get_raw("/api/tasks/1%20OR%201=1")},
        {"injection id 2", get_raw("/api/tasks/1;DROP%20TABLE%20tasks")},
        {"DELETE injection id", get_raw("/api/tasks/1'--", {}, "DELETE")},
        {"path traversal", get_raw("/../../etc/passwd")},
        {"unicode path", get_raw("/api/t\xc3\xa2sks")},
        {"encoded slash", get_raw("/api%2ftasks")},
        {"slow delay negative", get_raw("/api/simulate-slow?delay=-1")},
        {"slow delay exponent", get_raw("/api/simulate-slow?delay=1e308")},
        {"slow delay inf", get_raw("/api/simulate-slow?delay=inf")},
        {"slow delay bad escape", get_raw("/api/simulate-slow?delay=%zz")},
        {"slow delay injection", get_raw("/api/simulate-slow?delay=1;sleep%2010")},
        {"smoke ops huge", "POST /api/smoke/db?ops=18446744073709551617 HTTP/1.1\r\nHost: "
                           "x\r\nContent-Length: 0\r\n\r\n"},
        {"smoke type injection", "POST /api/smoke/db?type=read'%20OR%201=1 HTTP/1.1\r\nHost: "
                                 "x\r\nContent-Length: 0\r\n\r\n"},
        {"huge header value", get_raw("/api/tasks", "X-Big: " + std::string(20000, 'h') + "\r\n")},
        {"huge traceparent",
         get_raw("/api/tasks/0", "traceparent: 00-" + std::string(9000, 'a') + "\r\n")},
        {"too many headers", get_raw("/api/tasks", many_headers)},
        {"header name too long", get_raw("/api/tasks", std::string(300, 'N') + ": v\r\n")},
        {"URI too long", get_raw("/api/tasks/" + std::string(20000, '1'))},
        {"garbage request line", "HELLO WORLD\r\n\r\n"},
        {"binary garbage",
         std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + "\r\n\r\n"},
        {"method too long", get_raw("/api/tasks", {}, std::string(64, 'G'))},
        {"unknown method", get_raw("/api/tasks", {}, "BREW")},
        {"TRACE method", get_raw("/api/tasks", {}, "TRACE")},
    };
    REQUIRE(corpus.size() >= 40);

    for (const auto& [name, raw] : corpus) {
        INFO("case: " << name);
        const auto r = raw_http(p, raw);
        INFO("status " << r.status << " body " << r.body);
        CHECK(r.status >= 400);
        CHECK(r.status < 500);
        bool json_error = false;
        try {
            const auto j = nlohmann::json::parse(r.body);
            json_error = j.is_object() && j.contains("error") && j["error"].is_string();
        } catch (...) {
        }
        CHECK(json_error);
        // The server is still up and serves the next request.
        const auto health = http(p, "GET", "/health");
        REQUIRE(health.status == 200);
    }
    // Nothing hostile was stored; the table is intact.
    const auto list = http(p, "GET", "/api/tasks").json();
    REQUIRE(list["count"] == 1);
    REQUIRE(list["tasks"][0]["title"] == "existing");
}
