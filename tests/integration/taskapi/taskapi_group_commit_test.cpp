// Group commit (app/src/group_commit.hpp) against the real service and a real SQLite file: a
// write is acknowledged if and only if it is stored, also when other writes of its group fail
// (a statement aborted by a trigger, a transaction rolled back by one, a transaction that cannot
// start); a lone writer gets a group of its own; SIGTERM commits what was queued.

#include <sqlite3.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <mutex>
#include <set>
#include <thread>

#include <labctl/core/process.hpp>

#include "harness.hpp"

using namespace labctl::test::taskapi;

namespace {

const std::string k_json = "application/json";

/// A connection of the test's own to the service's database file.
class Db {
public:
    explicit Db(const std::filesystem::path& path) {
        REQUIRE(sqlite3_open(path.c_str(), &m_db) == SQLITE_OK);
        sqlite3_busy_timeout(m_db, 5000);
    }
    ~Db() { sqlite3_close(m_db); }
    Db(const Db&) = delete;
    Db& operator=(const Db&) = delete;
    void exec(const std::string& sql) {
        char* error = nullptr;
        const int rc = sqlite3_exec(m_db, sql.c_str(), nullptr, nullptr, &error);
        INFO(sql << ": " << (error != nullptr ? error : ""));
        sqlite3_free(error);
        REQUIRE(rc == SQLITE_OK);
    }
    std::set<std::string> titles() {
        std::set<std::string> out;
        sqlite3_stmt* st = nullptr;
        REQUIRE(sqlite3_prepare_v2(m_db, "SELECT title FROM tasks", -1, &st, nullptr) == SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW) {
            out.insert(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
        }
        sqlite3_finalize(st);
        return out;
    }

private:
    sqlite3* m_db = nullptr;
};

struct Posted {
    std::mutex mutex;
    std::set<std::string> acknowledged;
    std::set<std::string> refused;
    std::set<int> statuses;
};

/// `writers` threads POST `per_writer` tasks each at once; title(w, i) names each.
template <typename Title>
void post_concurrently(std::uint16_t port, int writers, int per_writer, Title title,
                       Posted& posted) {
    std::vector<std::thread> threads;
    for (int w = 0; w < writers; ++w) {
        threads.emplace_back([&, w] {
            for (int i = 0; i < per_writer; ++i) {
                const std::string t = title(w, i);
                const auto r =
                    http(port, "POST", "/api/tasks", nlohmann::json({{"title", t}}).dump(), k_json);
                const std::lock_guard<std::mutex> lock(posted.mutex);
                posted.statuses.insert(r.status);
                (r.status == 201 ? posted.acknowledged : posted.refused).insert(t);
            }
        });
    }
    for (auto& t : threads) {
        t.join();
    }
}

} // namespace

TEST_CASE("taskapi group commit: writes aborted or rolled back by a trigger fail alone or with "
          "their group and every acknowledged write is stored and no other",
          "[taskapi][group-commit]") {
    TempDir dir;
    ApiProcess api(dir.path() / "tasks.db", dir.path() / "api.log");
    Db db(dir.path() / "tasks.db");
    // RAISE(ABORT) undoes one statement and keeps the transaction (the group goes on without
    // it); RAISE(ROLLBACK) ends the whole transaction (every write of the group is lost, so
    // none of them may be acknowledged).
    db.exec("CREATE TRIGGER abort_poison BEFORE INSERT ON tasks WHEN NEW.title LIKE 'abort-%' "
            "BEGIN SELECT RAISE(ABORT, 'poisoned'); END");
    db.exec("CREATE TRIGGER rollback_poison BEFORE INSERT ON tasks WHEN NEW.title LIKE "
            "'rollback-%' BEGIN SELECT RAISE(ROLLBACK, 'rolled back'); END");
    Posted posted;
    post_concurrently(
        api.port(), 48, 20,
        [](int w, int i) {
            const char* kind =
                (w == 7 && i % 5 == 0) ? "rollback-" : (w % 6 == 0 ? "abort-" : "ok-");
            return std::string(kind) + std::to_string(w) + "-" + std::to_string(i);
        },
        posted);
    INFO("acknowledged " << posted.acknowledged.size() << ", refused " << posted.refused.size());
    CHECK(posted.statuses == std::set<int>{201, 500});
    const auto stored = db.titles();
    CHECK(stored == posted.acknowledged);
    for (const auto& title : posted.acknowledged) {
        INFO(title);
        CHECK(title.rfind("ok-", 0) == 0);
    }
    for (const auto& title : posted.refused) {
        if (title.rfind("ok-", 0) == 0) {
            // An ordinary write refused: it shared a group with a rolled-back one.
            CHECK(stored.count(title) == 0);
        }
    }
    CHECK(posted.acknowledged.size() >= 48 * 20 - 8 * 20 - 4 * 48); // most ok- writes landed

    const auto metrics = http(api.port(), "GET", "/metrics").body;
    const double groups = metric_sum(metrics, "db_commit_group_writes_count");
    const double writes = metric_sum(metrics, "db_commit_group_writes_sum");
    INFO("groups " << groups << ", writes " << writes);
    CHECK(writes == static_cast<double>(posted.acknowledged.size()));
    CHECK(groups < writes); // 48 concurrent writers share transactions
    // The service goes on writing after both kinds of failure.
    CHECK(http(api.port(), "POST", "/api/tasks", R"({"title":"after"})", k_json).status == 201);
}

TEST_CASE("taskapi group commit: a group whose transaction cannot start answers each of its "
          "writes 500 and stores none and the next group commits",
          "[taskapi][group-commit]") {
    TempDir dir;
    ApiProcess api(dir.path() / "tasks.db", dir.path() / "api.log",
                   {{"DB_BUSY_TIMEOUT_MS", "300"}});
    Db db(dir.path() / "tasks.db");
    db.exec("BEGIN IMMEDIATE"); // another process holds the write lock past the busy timeout
    Posted posted;
    const auto start = std::chrono::steady_clock::now();
    post_concurrently(
        api.port(), 8, 1, [](int w, int) { return "locked-" + std::to_string(w); }, posted);
    const double took =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    db.exec("ROLLBACK");
    INFO(api.log_text());
    CHECK(posted.statuses == std::set<int>{500});
    CHECK(took < 8 * 0.3 + 5); // at most one busy timeout per group, never the confirm bound
    CHECK(db.titles().empty());
    REQUIRE(http(api.port(), "POST", "/api/tasks", R"({"title":"free"})", k_json).status == 201);
    CHECK(db.titles() == std::set<std::string>{"free"});
    CHECK(api.log_text().find("database is locked") != std::string::npos);
}

TEST_CASE("taskapi group commit: a lone writer gets a transaction of its own for every write",
          "[taskapi][group-commit]") {
    TempDir dir;
    ApiProcess api(dir.path() / "tasks.db", dir.path() / "api.log");
    for (int i = 0; i < 30; ++i) {
        REQUIRE(http(api.port(), "POST", "/api/tasks",
                     R"({"title":"alone )" + std::to_string(i) + R"("})", k_json)
                    .status == 201);
    }
    const auto metrics = http(api.port(), "GET", "/metrics").body;
    CHECK(metric_sum(metrics, "db_commit_group_writes_count") == 30);
    CHECK(metric_sum(metrics, "db_commit_group_writes_bucket", {R"(le="1")"}) == 30);
}

TEST_CASE("taskapi group commit: SIGTERM under 64 writers stores every acknowledged write and "
          "exits 0",
          "[taskapi][group-commit]") {
    TempDir dir;
    std::optional<ApiProcess> api;
    api.emplace(dir.path() / "tasks.db", dir.path() / "api.log");
    const auto port = api->port();
    std::atomic<bool> stop{false};
    Posted posted;
    std::vector<std::thread> threads;
    for (int w = 0; w < 64; ++w) {
        threads.emplace_back([&, w] {
            for (int i = 0; !stop.load(); ++i) {
                const std::string t = "w" + std::to_string(w) + "-" + std::to_string(i);
                int status = 0;
                try {
                    status = http(port, "POST", "/api/tasks", nlohmann::json({{"title", t}}).dump(),
                                  k_json)
                                 .status;
                } catch (...) {
                    status = 0; // refused or cut: the server is going away
                }
                const std::lock_guard<std::mutex> lock(posted.mutex);
                posted.statuses.insert(status);
                (status == 201 ? posted.acknowledged : posted.refused).insert(t);
                if (status == 0) {
                    return;
                }
            }
        });
    }
    std::this_thread::sleep_for(std::chrono::seconds(2));
    const auto code = api->terminate(std::chrono::seconds(15));
    stop = true;
    for (auto& t : threads) {
        t.join();
    }
    INFO(api->log_text());
    REQUIRE(code.has_value());
    CHECK(*code == 0);
    REQUIRE(posted.acknowledged.size() > 64);
    Db db(dir.path() / "tasks.db");
    const auto stored = db.titles();
    std::size_t missing = 0;
    for (const auto& title : posted.acknowledged) {
        missing += stored.count(title) == 0 ? 1 : 0;
    }
    CHECK(missing == 0);
    // Writes cut off by the shutdown were either stored before it or not at all.
    CHECK(stored.size() <= posted.acknowledged.size() + 64);
}

TEST_CASE("taskapi group commit: DB_GROUP_COMMIT takes on or off and anything else is exit 2 "
          "naming it",
          "[taskapi][group-commit]") {
    TempDir dir;
    labctl::ProcessOptions opts;
    opts.timeout = std::chrono::seconds(10);
    opts.env = {{"DB_GROUP_COMMIT", "sometimes"},
                {"DB_PATH", (dir.path() / "tasks.db").string()},
                {"HOST", "127.0.0.1"},
                {"PORT", "0"}};
    const auto r = labctl::run_process({taskapi_binary().string()}, opts);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("DB_GROUP_COMMIT must be on|off, got 'sometimes'") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir.path() / "tasks.db"));
    // Both values start a service that writes.
    for (const char* value : {"on", "OFF"}) {
        ApiProcess api(dir.path() / (std::string(value) + ".db"),
                       dir.path() / (std::string(value) + ".log"), {{"DB_GROUP_COMMIT", value}});
        CHECK(http(api.port(), "POST", "/api/tasks", R"({"title":"t"})", k_json).status == 201);
    }
}
