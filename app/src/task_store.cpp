#include "task_store.hpp"

#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/SQLite/Utility.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>
#include <Poco/Exception.h>
#include <Poco/Nullable.h>
#include <opentelemetry/trace/scope.h>
#include <opentelemetry/trace/span_startoptions.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "json_log.hpp"
#include "json_text.hpp"
#include "metrics.hpp"
#include "telemetry.hpp"

namespace labctl::taskapi {

using namespace Poco::Data::Keywords;
using Poco::Data::Session;
using Poco::Data::Statement;

namespace {

constexpr const char* k_schema = "CREATE TABLE IF NOT EXISTS tasks ("
                                 "id INTEGER PRIMARY KEY AUTOINCREMENT, "
                                 "title TEXT NOT NULL, "
                                 "description TEXT, "
                                 "completed INTEGER NOT NULL DEFAULT 0, "
                                 "created_at TEXT NOT NULL)";
constexpr const char* k_sql_list = "SELECT id, title, description, completed, created_at FROM "
                                   "tasks ORDER BY id DESC LIMIT ?";
constexpr const char* k_sql_get =
    "SELECT id, title, description, completed, created_at FROM tasks WHERE id = ?";
constexpr const char* k_sql_insert =
    "INSERT INTO tasks (title, description, completed, created_at) VALUES (?, ?, ?, ?)";
constexpr const char* k_sql_delete = "DELETE FROM tasks WHERE id = ?";
constexpr const char* k_sql_count = "SELECT COUNT(*) FROM tasks";
/// Connections in the pool: statements are short and writes are serialised anyway, so more
/// connections than this only cost memory (each has its own page cache).
constexpr std::size_t k_max_sessions = 16;

void exec_raw(sqlite3* db, const char* sql) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
        std::string message = std::string(sql) + ": " + (err != nullptr ? err : sqlite3_errstr(rc));
        sqlite3_free(err);
        throw std::runtime_error(message);
    }
}

/// One SQL statement as a CLIENT span (child of the active span) and a histogram observation.
template <typename F>
auto instrumented(Telemetry& telemetry, Metrics& metrics, const char* operation, const char* sql,
                  F&& body) {
    namespace trace = opentelemetry::trace;
    trace::StartSpanOptions options;
    options.kind = trace::SpanKind::kClient;
    if (const auto* parent = RequestSpanScope::current(); parent != nullptr && parent->IsValid()) {
        options.parent = *parent; // the request's SERVER span (see RequestSpanScope)
    }
    auto span = telemetry.tracer().StartSpan(std::string(operation) + " tasks",
                                             {{"db.system.name", "sqlite"},
                                              {"db.system", "sqlite"},
                                              {"db.operation.name", operation},
                                              {"db.collection.name", "tasks"},
                                              {"db.query.text", sql}},
                                             options);
    const auto start = std::chrono::steady_clock::now();
    const auto finish = [&](bool ok) {
        const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
        metrics.observe_db(operation, elapsed.count());
        if (!ok) {
            span->SetStatus(trace::StatusCode::kError, "SQL statement failed");
        }
        span->End();
    };
    try {
        auto result = body();
        finish(true);
        return result;
    } catch (...) {
        finish(false);
        throw;
    }
}

/// How long a request waits for the group-commit writer to confirm its write: its own group may
/// queue behind one that waits out the busy timeout, then wait it out itself, plus the fsyncs.
std::chrono::milliseconds confirm_bound(const Config& config) {
    return 2 * config.busy_timeout + std::chrono::seconds(10);
}

// Binding and stepping on the writer's connection; every result code checked.
void check_bind(WriterConnection& c, int rc, const char* sql) {
    if (rc != SQLITE_OK) {
        throw std::runtime_error(std::string(sql) +
                                 ": binding a parameter: " + sqlite3_errmsg(c.handle()));
    }
}
void bind_text(WriterConnection& c, sqlite3_stmt* st, int index, const std::string& value,
               const char* sql) {
    check_bind(
        c,
        sqlite3_bind_text(st, index, value.data(), static_cast<int>(value.size()), SQLITE_STATIC),
        sql);
}
void bind_optional_text(WriterConnection& c, sqlite3_stmt* st, int index,
                        const std::optional<std::string>& value, const char* sql) {
    if (value) {
        bind_text(c, st, index, *value, sql);
    } else {
        check_bind(c, sqlite3_bind_null(st, index), sql);
    }
}
void bind_int(WriterConnection& c, sqlite3_stmt* st, int index, std::int64_t value,
              const char* sql) {
    check_bind(c, sqlite3_bind_int64(st, index, value), sql);
}
/// Runs a statement that returns no rows; the number of rows it changed.
std::int64_t step_done(WriterConnection& c, sqlite3_stmt* st, const char* sql) {
    if (sqlite3_step(st) != SQLITE_DONE) {
        const std::string error = sqlite3_errmsg(c.handle());
        sqlite3_reset(st);
        throw std::runtime_error(std::string(sql) + ": " + error);
    }
    sqlite3_reset(st);
    return sqlite3_changes64(c.handle());
}

Task make_task(Poco::Int64 id, std::string title, const Poco::Nullable<std::string>& description,
               int completed, std::string created_at) {
    Task t;
    t.id = id;
    t.title = std::move(title);
    if (!description.isNull()) {
        t.description = description.value();
    }
    t.completed = completed != 0;
    t.created_at = std::move(created_at);
    return t;
}

} // namespace

void append_task_json(std::string& out, const Task& task) {
    out += "{\"id\":";
    out += std::to_string(task.id);
    out += ",\"title\":";
    append_json_string(out, task.title);
    out += ",\"description\":";
    if (task.description) {
        append_json_string(out, *task.description);
    } else {
        out += "null";
    }
    out += ",\"completed\":";
    out += task.completed ? "true" : "false";
    out += ",\"created_at\":";
    append_json_string(out, task.created_at);
    out.push_back('}');
}

class TaskStore::Lease {
public:
    Lease(TaskStore& store, std::unique_ptr<Session> session)
        : m_store(store), m_session(std::move(session)) {}
    ~Lease() {
        if (m_session) {
            m_store.give_back(std::move(m_session));
        }
    }
    Lease(Lease&& other) noexcept = default;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Lease& operator=(Lease&&) = delete;
    Session& operator*() { return *m_session; }
    sqlite3* handle() { return Poco::Data::SQLite::Utility::dbHandle(*m_session); }

private:
    TaskStore& m_store;
    std::unique_ptr<Session> m_session;
};

TaskStore::TaskStore(const Config& config, Telemetry& telemetry, Metrics& metrics)
    : m_config(config), m_telemetry(telemetry), m_metrics(metrics),
      m_max_open(
          std::min<std::size_t>(static_cast<std::size_t>(config.max_threads), k_max_sessions)) {
    Poco::Data::SQLite::Connector::registerConnector();
    auto first = open_session();
    sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(*first);
    // journal_mode=WAL is persistent in the file; check that it took effect (it cannot on some
    // file systems, and then concurrent readers would block writers).
    std::string mode;
    *first << "PRAGMA journal_mode=WAL", into(mode), now;
    if (mode != "wal") {
        throw std::runtime_error("SQLite refused WAL mode for " + m_config.db_path + " (got '" +
                                 mode + "')");
    }
    exec_raw(db, k_schema);
    ++m_open;
    give_back(std::move(first));
    if (m_config.group_commit) {
        m_group = std::make_unique<GroupCommit>(m_config.db_path, m_config.busy_timeout,
                                                confirm_bound(m_config), m_write_mutex, m_metrics);
    }

    for (auto& probe : m_probes) {
        if (sqlite3_open_v2(m_config.db_path.c_str(), &probe.db, SQLITE_OPEN_READWRITE, nullptr) !=
                SQLITE_OK ||
            sqlite3_prepare_v2(probe.db, "PRAGMA data_version", -1, &probe.stmt, nullptr) !=
                SQLITE_OK) {
            const std::string error =
                probe.db != nullptr ? sqlite3_errmsg(probe.db) : "out of memory";
            close_probes();
            throw std::runtime_error("cannot open " + m_config.db_path + ": " + error);
        }
        sqlite3_busy_timeout(probe.db, static_cast<int>(m_config.busy_timeout.count()));
    }
}

void TaskStore::close_probes() {
    for (auto& probe : m_probes) {
        sqlite3_finalize(probe.stmt);
        sqlite3_close(probe.db);
        probe.stmt = nullptr;
        probe.db = nullptr;
    }
}

TaskStore::~TaskStore() {
    close_probes();
    const std::lock_guard<std::mutex> lock(m_pool_mutex);
    m_free.clear();
}

std::int64_t TaskStore::cache_epoch() {
    thread_local const std::size_t t_probe = m_next_probe.fetch_add(1) % k_probes;
    Probe& probe = m_probes[t_probe];
    const std::lock_guard<std::mutex> lock(probe.mutex);
    sqlite3_reset(probe.stmt);
    if (sqlite3_step(probe.stmt) != SQLITE_ROW) {
        sqlite3_reset(probe.stmt);
        return -1; // unknown: never matches a cached epoch
    }
    const std::int64_t version = sqlite3_column_int64(probe.stmt, 0);
    sqlite3_reset(probe.stmt);
    if (version != probe.last_seen) {
        // Still under the probe's mutex: whoever uses this probe next sees the new epoch.
        probe.last_seen = version;
        return m_epoch.fetch_add(1) + 1;
    }
    return m_epoch.load();
}

std::shared_ptr<const std::string> TaskStore::list_json() {
    // The epoch is read before the query: a commit racing with it only makes the cached body
    // newer than its epoch, so the next request re-reads (never serves stale data).
    const std::int64_t epoch = cache_epoch();
    if (epoch >= 0) {
        const std::lock_guard<std::mutex> lock(m_cache_mutex);
        if (m_cache && m_cache_version == epoch) {
            return m_cache;
        }
    }
    const auto tasks = list();
    auto out = std::make_shared<std::string>();
    out->reserve(tasks.size() * 128 + 32);
    *out += "{\"tasks\":[";
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        if (i > 0) {
            out->push_back(',');
        }
        append_task_json(*out, tasks[i]);
    }
    *out += "],\"count\":" + std::to_string(tasks.size()) + "}";
    if (epoch >= 0) {
        const std::lock_guard<std::mutex> lock(m_cache_mutex);
        if (epoch >= m_cache_version) { // never replace a body of a later epoch
            m_cache = out;
            m_cache_version = epoch;
        }
    }
    return out;
}

std::unique_ptr<Session> TaskStore::open_session() {
    auto session = std::make_unique<Session>("SQLite", m_config.db_path);
    sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(*session);
    sqlite3_busy_timeout(db, static_cast<int>(m_config.busy_timeout.count()));
    // FULL: a transaction is on disk (WAL fsynced) before COMMIT returns, so a 2xx survives
    // kill -9 and power loss.
    exec_raw(db, "PRAGMA synchronous=FULL");
    exec_raw(db, "PRAGMA foreign_keys=ON");
    // 1 MiB page cache per connection (SQLite's default is 2 MiB): memory stays flat under load.
    exec_raw(db, "PRAGMA cache_size=-1024");
    return session;
}

TaskStore::Lease TaskStore::lease() {
    std::unique_lock<std::mutex> lock(m_pool_mutex);
    for (;;) {
        if (!m_free.empty()) {
            auto session = std::move(m_free.back());
            m_free.pop_back();
            return Lease(*this, std::move(session));
        }
        if (m_open < m_max_open) {
            ++m_open;
            lock.unlock();
            try {
                return Lease(*this, open_session());
            } catch (...) {
                lock.lock();
                --m_open;
                throw;
            }
        }
        m_pool_cv.wait(lock);
    }
}

void TaskStore::give_back(std::unique_ptr<Session> session) {
    {
        const std::lock_guard<std::mutex> lock(m_pool_mutex);
        m_free.push_back(std::move(session));
    }
    m_pool_cv.notify_one();
}

std::vector<Task> TaskStore::list() {
    auto session = lease();
    return instrumented(m_telemetry, m_metrics, "SELECT", k_sql_list, [&] {
        std::vector<Poco::Int64> ids;
        std::vector<std::string> titles;
        std::vector<Poco::Nullable<std::string>> descriptions;
        std::vector<int> completed;
        std::vector<std::string> created;
        Poco::Int64 limit = static_cast<Poco::Int64>(k_list_limit);
        Statement st(*session);
        st << k_sql_list, into(ids), into(titles), into(descriptions), into(completed),
            into(created), use(limit);
        st.execute();
        std::vector<Task> out;
        out.reserve(ids.size());
        for (std::size_t i = 0; i < ids.size(); ++i) {
            out.push_back(make_task(ids[i], std::move(titles[i]), descriptions[i], completed[i],
                                    std::move(created[i])));
        }
        return out;
    });
}

std::optional<Task> TaskStore::get(std::int64_t id) {
    auto session = lease();
    return instrumented(m_telemetry, m_metrics, "SELECT", k_sql_get, [&]() -> std::optional<Task> {
        std::vector<Poco::Int64> ids;
        std::vector<std::string> titles;
        std::vector<Poco::Nullable<std::string>> descriptions;
        std::vector<int> completed;
        std::vector<std::string> created;
        Poco::Int64 key = id;
        Statement st(*session);
        st << k_sql_get, into(ids), into(titles), into(descriptions), into(completed),
            into(created), use(key);
        st.execute();
        if (ids.empty()) {
            return std::nullopt;
        }
        return make_task(ids[0], std::move(titles[0]), descriptions[0], completed[0],
                         std::move(created[0]));
    });
}

Task TaskStore::create(const TaskInput& input) {
    Task task;
    task.title = input.title.value_or(std::string());
    task.description = input.description;
    task.completed = input.completed.value_or(false);
    task.created_at = iso8601_utc_now();
    if (m_group) {
        task.id = instrumented(m_telemetry, m_metrics, "INSERT", k_sql_insert, [&] {
            return m_group->run([title = task.title, description = task.description,
                                 completed = task.completed,
                                 created = task.created_at](WriterConnection& c) {
                sqlite3_stmt* st = c.statement(k_sql_insert);
                bind_text(c, st, 1, title, k_sql_insert);
                bind_optional_text(c, st, 2, description, k_sql_insert);
                bind_int(c, st, 3, completed ? 1 : 0, k_sql_insert);
                bind_text(c, st, 4, created, k_sql_insert);
                step_done(c, st, k_sql_insert);
                return static_cast<std::int64_t>(sqlite3_last_insert_rowid(c.handle()));
            });
        });
        return task;
    }
    // Writer lock before a connection: writers queue without holding connections readers need,
    // and nobody holding a connection ever waits for the lock (no deadlock).
    const std::lock_guard<std::mutex> write(m_write_mutex);
    auto session = lease();
    task.id = instrumented(m_telemetry, m_metrics, "INSERT", k_sql_insert, [&] {
        Poco::Nullable<std::string> description;
        if (task.description) {
            description = *task.description;
        }
        int completed = task.completed ? 1 : 0;
        Statement st(*session);
        st << k_sql_insert, use(task.title), use(description), use(completed), use(task.created_at);
        st.execute();
        return static_cast<std::int64_t>(sqlite3_last_insert_rowid(session.handle()));
    });
    return task;
}

std::optional<Task> TaskStore::update(std::int64_t id, const TaskInput& input) {
    // Only fixed column fragments are concatenated; every value is a bound parameter.
    std::string sql = "UPDATE tasks SET ";
    bool first = true;
    const auto column = [&](const char* fragment) {
        sql += first ? "" : ", ";
        sql += fragment;
        first = false;
    };
    if (input.title) {
        column("title = ?");
    }
    if (input.description_set) {
        column("description = ?");
    }
    if (input.completed) {
        column("completed = ?");
    }
    sql += " WHERE id = ?";

    std::string title = input.title.value_or(std::string());
    Poco::Nullable<std::string> description;
    if (input.description) {
        description = *input.description;
    }
    int completed = input.completed.value_or(false) ? 1 : 0;
    Poco::Int64 key = id;
    if (m_group) {
        const auto changed = instrumented(m_telemetry, m_metrics, "UPDATE", sql.c_str(), [&] {
            return m_group->run([sql, input, id](WriterConnection& c) {
                sqlite3_stmt* st = c.statement(sql);
                int index = 0;
                if (input.title) {
                    bind_text(c, st, ++index, *input.title, sql.c_str());
                }
                if (input.description_set) {
                    bind_optional_text(c, st, ++index, input.description, sql.c_str());
                }
                if (input.completed) {
                    bind_int(c, st, ++index, *input.completed ? 1 : 0, sql.c_str());
                }
                bind_int(c, st, ++index, id, sql.c_str());
                return step_done(c, st, sql.c_str());
            });
        });
        if (changed == 0) {
            return std::nullopt;
        }
        return get(id);
    }
    {
        const std::lock_guard<std::mutex> write(m_write_mutex);
        auto session = lease();
        const int changed = instrumented(m_telemetry, m_metrics, "UPDATE", sql.c_str(), [&] {
            Statement st(*session);
            st << sql;
            if (input.title) {
                st, use(title);
            }
            if (input.description_set) {
                st, use(description);
            }
            if (input.completed) {
                st, use(completed);
            }
            st, use(key);
            st.execute();
            return sqlite3_changes(session.handle());
        });
        if (changed == 0) {
            return std::nullopt;
        }
    }
    return get(id);
}

bool TaskStore::remove(std::int64_t id) {
    if (m_group) {
        return instrumented(m_telemetry, m_metrics, "DELETE", k_sql_delete, [&] {
                   return m_group->run([id](WriterConnection& c) {
                       sqlite3_stmt* st = c.statement(k_sql_delete);
                       bind_int(c, st, 1, id, k_sql_delete);
                       return step_done(c, st, k_sql_delete);
                   });
               }) > 0;
    }
    // Writer lock before a connection: writers queue without holding connections readers need,
    // and nobody holding a connection ever waits for the lock (no deadlock).
    const std::lock_guard<std::mutex> write(m_write_mutex);
    auto session = lease();
    Poco::Int64 key = id;
    const int changed = instrumented(m_telemetry, m_metrics, "DELETE", k_sql_delete, [&] {
        Statement st(*session);
        st << k_sql_delete, use(key);
        st.execute();
        return sqlite3_changes(session.handle());
    });
    return changed > 0;
}

SmokeResult TaskStore::smoke(std::int64_t ops, bool reads, bool writes) {
    SmokeResult result;
    std::unique_lock<std::mutex> write(m_write_mutex, std::defer_lock);
    if (writes) {
        write.lock(); // before the connection, as in create()
    }
    auto session = lease();
    const auto read_once = [&] {
        instrumented(m_telemetry, m_metrics, "SELECT", k_sql_count, [&] {
            Poco::Int64 count = 0;
            Statement st(*session);
            st << k_sql_count, into(count);
            st.execute();
            return count;
        });
        ++result.reads;
    };
    if (!writes) {
        for (std::int64_t i = 0; i < ops; ++i) {
            read_once();
        }
        return result;
    }
    exec_raw(session.handle(), "BEGIN IMMEDIATE");
    try {
        for (std::int64_t i = 0; i < ops; ++i) {
            if (reads && i % 2 == 0) {
                read_once();
                continue;
            }
            instrumented(m_telemetry, m_metrics, "INSERT", k_sql_insert, [&] {
                std::string title = "smoke-test";
                Poco::Nullable<std::string> description;
                int completed = 0;
                std::string created = iso8601_utc_now();
                Statement st(*session);
                st << k_sql_insert, use(title), use(description), use(completed), use(created);
                return st.execute();
            });
            ++result.writes;
        }
    } catch (...) {
        exec_raw(session.handle(), "ROLLBACK");
        throw;
    }
    exec_raw(session.handle(), "ROLLBACK");
    return result;
}

bool TaskStore::healthy(std::string& error) {
    try {
        auto session = lease();
        Poco::Int64 one = 0;
        *session << "SELECT COUNT(*) FROM (SELECT 1 FROM tasks LIMIT 1)", into(one), now;
        return true;
    } catch (const Poco::Exception& e) {
        error = e.displayText();
        return false;
    } catch (const std::exception& e) {
        error = e.what();
        return false;
    }
}

} // namespace labctl::taskapi
