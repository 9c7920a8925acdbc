// Durability: every write the API acknowledged (201) survives kill -9 of the server, with no
// duplicates and a database that passes PRAGMA integrity_check.

#include <sqlite3.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <thread>

#include "harness.hpp"

using namespace labctl::test::taskapi;

namespace {

struct Row {
    long id = 0;
    std::string title;
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
    REQUIRE(sqlite3_prepare_v2(handle, "SELECT id, title FROM tasks", -1, &st, nullptr) ==
            SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        rows.push_back({static_cast<long>(sqlite3_column_int64(st, 0)),
                        reinterpret_cast<const char*>(sqlite3_column_text(st, 1))});
    }
    sqlite3_finalize(st);
    sqlite3_close(handle);
    return rows;
}

} // namespace

TEST_CASE("taskapi durability: acknowledged writes survive kill -9", "[taskapi][durability]") {
    TempDir dir;
    const auto db = dir.path() / "tasks.db";
    std::map<std::string, long> acknowledged; // title -> id
    std::mutex mutex;
    std::atomic<bool> stop{false};
    std::atomic<long> attempts{0};
    std::atomic<long> not_acknowledged{0};
    {
        ApiProcess api(db, dir.path() / "api.log");
        const auto port = api.port();
        constexpr int k_writers = 8;
        std::vector<std::thread> writers;
        for (int w = 0; w < k_writers; ++w) {
            writers.emplace_back([&, w] {
                for (long seq = 0; !stop.load(); ++seq) {
                    std::string title = "w";
                    title.append(std::to_string(w)).append("-").append(std::to_string(seq));
                    attempts.fetch_add(1);
                    try {
                        const auto r = http(port, "POST", "/api/tasks",
                                            nlohmann::json({{"title", title}}).dump(),
                                            "application/json", {}, std::chrono::seconds(5));
                        if (r.status == 201) {
                            const long id = r.json()["id"].get<long>();
                            const std::lock_guard<std::mutex> lock(mutex);
                            acknowledged.emplace(title, id);
                        } else {
                            not_acknowledged.fetch_add(1);
                        }
                    } catch (...) {
                        // No answer (the server was killed under us): not acknowledged.
                        not_acknowledged.fetch_add(1);
                        std::this_thread::sleep_for(std::chrono::milliseconds(5));
                    }
                }
            });
        }
        std::this_thread::sleep_for(std::chrono::seconds(10));
        api.kill9(); // while the writers are still writing
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        stop = true;
        for (auto& t : writers) {
            t.join();
        }
    }
    INFO("attempts " << attempts.load() << ", acknowledged " << acknowledged.size()
                     << ", not acknowledged " << not_acknowledged.load());
    REQUIRE(acknowledged.size() > 100);

    // Restart on the same file: the service recovers the WAL and serves the data.
    {
        ApiProcess api(db, dir.path() / "api2.log");
        const auto sample = acknowledged.begin()->second;
        REQUIRE(http(api.port(), "GET", "/api/tasks/" + std::to_string(sample)).status == 200);
        REQUIRE(api.terminate() == 0);
    }
    std::string integrity;
    const auto rows = read_rows(db, integrity);
    CHECK(integrity == "ok");
    std::map<std::string, long> stored;
    std::size_t duplicates = 0;
    for (const auto& row : rows) {
        if (!stored.emplace(row.title, row.id).second) {
            ++duplicates;
        }
    }
    CHECK(duplicates == 0);
    std::size_t missing = 0;
    std::size_t wrong_id = 0;
    for (const auto& [title, id] : acknowledged) {
        const auto it = stored.find(title);
        if (it == stored.end()) {
            ++missing;
        } else if (it->second != id) {
            ++wrong_id;
        }
    }
    CHECK(missing == 0);
    CHECK(wrong_id == 0);
    // At most the requests in flight at the kill may have been stored without an answer.
    CHECK(rows.size() <= acknowledged.size() + 8);
}
