// Durability: every write the API acknowledged (201 create, 200 update, 204 delete) survives
// kill -9 of the server, with no duplicates and a database that passes PRAGMA integrity_check;
// on the group-commit path (64 writers sharing transactions) and on the one-transaction-per-
// request path (DB_GROUP_COMMIT=off).

#include <sqlite3.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "harness.hpp"

using namespace labctl::test::taskapi;

namespace {

struct Row {
    long id = 0;
    std::string title;
    bool completed = false;
};

std::vector<Row> read_rows(const std::filesystem::path& db, std::string& integrity) {
    sqlite3* handle = nullptr;
    REQUIRE(sqlite3_open_v2(db.c_str(), &handle, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    std::vector<Row> rows;
    sqlite3_stmt* st = nullptr;
    REQUIRE(sqlite3_prepare_v2(handle, "PRAGMA integrity_check", -1, &st, nullptr) == SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        integrity += reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    REQUIRE(sqlite3_prepare_v2(handle, "SELECT id, title, completed FROM tasks", -1, &st,
                               nullptr) == SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        rows.push_back({static_cast<long>(sqlite3_column_int64(st, 0)),
                        reinterpret_cast<const char*>(sqlite3_column_text(st, 1)),
                        sqlite3_column_int(st, 2) != 0});
    }
    sqlite3_finalize(st);
    sqlite3_close(handle);
    return rows;
}

/// What the writers were told: a write counts only once its 2xx arrived.
struct Acknowledged {
    std::mutex mutex;
    std::map<std::string, long> created; // title -> id (201)
    std::set<long> completed;            // PUT completed=true answered 200
    std::set<long> deleted;              // DELETE answered 204
    std::set<long> delete_attempted;     // answered or not: the row may be gone
    std::set<long> complete_attempted;   // answered or not: the row may be completed
};

struct Outcome {
    long attempts = 0;
    long not_acknowledged = 0;
    double commit_groups = 0;       // db_commit_group_writes_count before the kill
    double single_write_groups = 0; // ... of which made one write durable
    double grouped_writes = 0;      // db_commit_group_writes_sum
};

/// `writers` threads create tasks and complete every 3rd and delete every 5th they created, for
/// 10 s, then the server is killed with SIGKILL while they still write.
Outcome write_then_kill(const std::filesystem::path& dir, int writers,
                        const std::map<std::string, std::string>& env, Acknowledged& ack) {
    Outcome outcome;
    std::atomic<bool> stop{false};
    std::atomic<long> attempts{0};
    std::atomic<long> not_acknowledged{0};
    ApiProcess api(dir / "tasks.db", dir / "api.log", env);
    const auto port = api.port();
    const auto request = [&](const std::string& method, const std::string& path,
                             const std::string& body) -> int {
        attempts.fetch_add(1);
        try {
            const auto r = http(port, method, path, body, body.empty() ? "" : "application/json",
                                {}, std::chrono::seconds(30));
            if (r.status >= 200 && r.status < 300) {
                return r.status == 201 ? static_cast<int>(r.json()["id"].get<long>()) : 0;
            }
        } catch (...) {
            // No answer (the server was killed under us): not acknowledged.
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        not_acknowledged.fetch_add(1);
        return -1;
    };
    std::vector<std::thread> threads;
    for (int w = 0; w < writers; ++w) {
        threads.emplace_back([&, w] {
            for (long seq = 0; !stop.load(); ++seq) {
                std::string title = "w";
                title.append(std::to_string(w)).append("-").append(std::to_string(seq));
                const int id =
                    request("POST", "/api/tasks", nlohmann::json({{"title", title}}).dump());
                if (id <= 0) {
                    continue;
                }
                {
                    const std::lock_guard<std::mutex> lock(ack.mutex);
                    ack.created.emplace(title, id);
                }
                const std::string path = "/api/tasks/" + std::to_string(id);
                if (seq % 3 == 0) {
                    {
                        const std::lock_guard<std::mutex> lock(ack.mutex);
                        ack.complete_attempted.insert(id);
                    }
                    if (request("PUT", path, R"({"completed":true})") == 0) {
                        const std::lock_guard<std::mutex> lock(ack.mutex);
                        ack.completed.insert(id);
                    }
                }
                if (seq % 5 == 0) {
                    {
                        const std::lock_guard<std::mutex> lock(ack.mutex);
                        ack.delete_attempted.insert(id);
                    }
                    if (request("DELETE", path, "") == 0) {
                        const std::lock_guard<std::mutex> lock(ack.mutex);
                        ack.deleted.insert(id);
                    }
                }
            }
        });
    }
    std::this_thread::sleep_for(std::chrono::seconds(10));
    try {
        const auto metrics = http(port, "GET", "/metrics").body;
        outcome.commit_groups = metric_sum(metrics, "db_commit_group_writes_count");
        outcome.grouped_writes = metric_sum(metrics, "db_commit_group_writes_sum");
        outcome.single_write_groups =
            metric_sum(metrics, "db_commit_group_writes_bucket", {R"(le="1")"});
    } catch (...) {
        // checked by the caller: no groups counted
    }
    api.kill9(); // while the writers are still writing
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    stop = true;
    for (auto& t : threads) {
        t.join();
    }
    outcome.attempts = attempts.load();
    outcome.not_acknowledged = not_acknowledged.load();
    return outcome;
}

/// Restarts on the same file, then checks every acknowledged write against what is stored.
void check_acknowledged_survived(const std::filesystem::path& dir, int writers,
                                 const Acknowledged& ack) {
    const auto db = dir / "tasks.db";
    // Restart on the same file: the service recovers the WAL and serves the data.
    {
        ApiProcess api(db, dir / "api2.log");
        const auto sample = ack.created.begin()->second;
        const int expected = ack.delete_attempted.count(sample) != 0 ? -1 : 200;
        const int status = http(api.port(), "GET", "/api/tasks/" + std::to_string(sample)).status;
        if (expected == 200) {
            REQUIRE(status == 200);
        }
        REQUIRE(api.terminate() == 0);
    }
    std::string integrity;
    const auto rows = read_rows(db, integrity);
    CHECK(integrity == "ok");
    std::map<std::string, Row> stored;
    std::size_t duplicates = 0;
    for (const auto& row : rows) {
        if (!stored.emplace(row.title, row).second) {
            ++duplicates;
        }
    }
    CHECK(duplicates == 0);
    std::size_t missing = 0;
    std::size_t wrong_id = 0;
    std::size_t not_completed = 0;
    std::size_t not_deleted = 0;
    std::size_t completed_unasked = 0;
    for (const auto& [title, id] : ack.created) {
        const auto it = stored.find(title);
        if (ack.deleted.count(id) != 0) {
            not_deleted += it != stored.end() ? 1 : 0;
            continue;
        }
        if (it == stored.end()) {
            // Only a delete that was sent (its answer lost to the kill) may have removed it.
            missing += ack.delete_attempted.count(id) == 0 ? 1 : 0;
            continue;
        }
        if (it->second.id != id) {
            ++wrong_id;
        }
        if (ack.completed.count(id) != 0 && !it->second.completed) {
            ++not_completed;
        }
        if (it->second.completed && ack.complete_attempted.count(id) == 0) {
            ++completed_unasked;
        }
    }
    CHECK(missing == 0);
    CHECK(wrong_id == 0);
    CHECK(not_completed == 0);
    CHECK(not_deleted == 0);
    CHECK(completed_unasked == 0);
    // At most the creates in flight at the kill may have been stored without an answer.
    const std::size_t acknowledged_rows = ack.created.size() - ack.deleted.size();
    CHECK(rows.size() <= acknowledged_rows + static_cast<std::size_t>(writers));
}

} // namespace

TEST_CASE("taskapi durability: acknowledged creates updates and deletes survive kill -9 with group "
          "commit under 64 writers",
          "[taskapi][durability]") {
    TempDir dir;
    Acknowledged ack;
    const auto outcome = write_then_kill(dir.path(), 64, {}, ack);
    INFO("attempts " << outcome.attempts << ", creates acknowledged " << ack.created.size()
                     << ", updates " << ack.completed.size() << ", deletes " << ack.deleted.size()
                     << ", not acknowledged " << outcome.not_acknowledged << "; groups "
                     << outcome.commit_groups << " made " << outcome.grouped_writes
                     << " writes durable, " << outcome.single_write_groups << " of them one write");
    REQUIRE(ack.created.size() > 100);
    REQUIRE(!ack.completed.empty());
    REQUIRE(!ack.deleted.empty());
    // The writes were grouped: more writes than transactions, and some transaction held several.
    REQUIRE(outcome.commit_groups > 0);
    CHECK(outcome.grouped_writes > outcome.commit_groups);
    CHECK(outcome.single_write_groups < outcome.commit_groups);
    check_acknowledged_survived(dir.path(), 64, ack);
}

TEST_CASE("taskapi durability: acknowledged creates updates and deletes survive kill -9 with one "
          "transaction per request",
          "[taskapi][durability]") {
    TempDir dir;
    Acknowledged ack;
    const auto outcome = write_then_kill(dir.path(), 8, {{"DB_GROUP_COMMIT", "off"}}, ack);
    INFO("attempts " << outcome.attempts << ", creates acknowledged " << ack.created.size()
                     << ", not acknowledged " << outcome.not_acknowledged);
    REQUIRE(ack.created.size() > 100);
    REQUIRE(!ack.deleted.empty());
    CHECK(outcome.commit_groups == 0); // the group-commit writer never ran
    check_acknowledged_survived(dir.path(), 8, ack);
}
