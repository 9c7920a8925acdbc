#pragma once
// The tasks table in SQLite through Poco::Data: WAL, busy timeout, synchronous=FULL (a 2xx means
// the row is on disk), parameterised statements only, schema created on start. Every SQL
// statement is a CLIENT span (child of the active SERVER span) and a db_query_duration_seconds
// observation. Writes (create, update, delete) go through the group-commit writer
// (group_commit.hpp) unless DB_GROUP_COMMIT=off; for them the span and the observation cover
// the wait for the group's durable COMMIT, which is what the request waited for.

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "group_commit.hpp"
#include "task_input.hpp"

namespace Poco::Data {
class Session;
}
struct sqlite3;
struct sqlite3_stmt;

namespace labctl::taskapi {

class Telemetry;
class Metrics;

struct Task {
    std::int64_t id = 0;
    std::string title;
    std::optional<std::string> description;
    bool completed = false;
    std::string created_at; ///< ISO-8601 UTC with Z
};

/// `{"id":…,"title":…,"description":…|null,"completed":…,"created_at":…}` appended to `out`.
void append_task_json(std::string& out, const Task& task);

struct SmokeResult {
    std::int64_t reads = 0;
    std::int64_t writes = 0;
};

class TaskStore {
public:
    /// Opens (creating) the database, switches it to WAL and creates the schema. Throws on failure.
    TaskStore(const Config& config, Telemetry& telemetry, Metrics& metrics);
    ~TaskStore();
    TaskStore(const TaskStore&) = delete;
    TaskStore& operator=(const TaskStore&) = delete;

    static constexpr std::size_t k_list_limit = 1000; ///< GET /api/tasks returns the newest 1000

    std::vector<Task> list();
    /// The GET /api/tasks body (`{"tasks":[…],"count":N}`), served from a cache that is valid
    /// while no commit happened since it was built: SQLite's `PRAGMA data_version`, read on
    /// dedicated probe connections, changes on every commit by any other connection or process;
    /// a probe seeing it change advances the cache epoch. Otherwise list() again.
    std::shared_ptr<const std::string> list_json();
    std::optional<Task> get(std::int64_t id);
    Task create(const TaskInput& input);
    std::optional<Task> update(std::int64_t id, const TaskInput& input);
    bool remove(std::int64_t id);
    /// `ops` statements; writes happen inside one transaction that is rolled back.
    SmokeResult smoke(std::int64_t ops, bool reads, bool writes);
    /// A real query against the tasks table; false (with `error`) when the DB is not usable.
    bool healthy(std::string& error);

private:
    class Lease;
    std::unique_ptr<Poco::Data::Session> open_session();
    Lease lease();
    void give_back(std::unique_ptr<Poco::Data::Session> session);

    Config m_config;
    Telemetry& m_telemetry;
    Metrics& m_metrics;
    std::mutex m_pool_mutex;
    std::condition_variable m_pool_cv;
    std::vector<std::unique_ptr<Poco::Data::Session>> m_free;
    std::size_t m_open = 0;
    std::size_t m_max_open;
    std::mutex m_write_mutex; ///< one writer at a time inside this process: short write txns
    std::unique_ptr<GroupCommit> m_group; ///< null with DB_GROUP_COMMIT=off

    /// The current cache epoch after checking one probe (-1 when the probe failed).
    std::int64_t cache_epoch();
    void close_probes();
    /// A few probes, each thread sticking to one: a single probe serialised every GET
    /// /api/tasks on its mutex around a step that makes two fcntl(2) calls, and the threads
    /// queueing there were most of the request path's futex waits and context switches.
    /// data_version values are per connection, so each probe remembers the last it saw.
    struct Probe {
        std::mutex mutex;
        sqlite3* db = nullptr;
        sqlite3_stmt* stmt = nullptr;
        std::int64_t last_seen = -1;
    };
    static constexpr std::size_t k_probes = 4;
    std::array<Probe, k_probes> m_probes;
    std::atomic<std::size_t> m_next_probe{0};
    /// Advanced (under the probe's mutex) whenever a probe sees its data_version change: a
    /// commit seen by any probe before a cache builder read the epoch is in what it built.
    std::atomic<std::int64_t> m_epoch{0};
    std::mutex m_cache_mutex;
    std::int64_t m_cache_version = -1; ///< the epoch m_cache was built in
    std::shared_ptr<const std::string> m_cache;
};

} // namespace labctl::taskapi
