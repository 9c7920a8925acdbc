#include "group_commit.hpp"

#include <exception>
#include <utility>
#include <vector>

#include "metrics.hpp"

namespace labctl::taskapi {

namespace {

std::runtime_error sqlite_error(sqlite3* db, const std::string& what) {
    return std::runtime_error(what + ": " + sqlite3_errmsg(db));
}

} // namespace

WriterConnection::WriterConnection(const std::string& db_path,
                                   std::chrono::milliseconds busy_timeout) {
    if (sqlite3_open_v2(db_path.c_str(), &m_db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
        const std::string error = m_db != nullptr ? sqlite3_errmsg(m_db) : "out of memory";
        sqlite3_close(m_db);
        throw std::runtime_error("cannot open " + db_path + " for writing: " + error);
    }
    try {
        sqlite3_busy_timeout(m_db, static_cast<int>(busy_timeout.count()));
        // As the pool's connections (task_store.cpp): FULL makes COMMIT return only once the WAL
        // is fsynced, which is what a caller's acknowledgement stands on.
        exec("PRAGMA synchronous=FULL");
        exec("PRAGMA foreign_keys=ON");
        exec("PRAGMA cache_size=-1024");
    } catch (...) {
        sqlite3_close(m_db);
        throw;
    }
}

WriterConnection::~WriterConnection() {
    for (auto& [sql, statement] : m_statements) {
        sqlite3_finalize(statement);
    }
    sqlite3_close(m_db);
}

sqlite3_stmt* WriterConnection::statement(const std::string& sql) {
    auto it = m_statements.find(sql);
    if (it == m_statements.end()) {
        sqlite3_stmt* prepared = nullptr;
        if (sqlite3_prepare_v3(m_db, sql.c_str(), static_cast<int>(sql.size()),
                               SQLITE_PREPARE_PERSISTENT, &prepared, nullptr) != SQLITE_OK) {
            throw sqlite_error(m_db, sql);
        }
        it = m_statements.emplace(sql, prepared).first;
    }
    sqlite3_reset(it->second);
    sqlite3_clear_bindings(it->second);
    return it->second;
}

void WriterConnection::exec(const char* sql) {
    if (sqlite3_exec(m_db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
        throw sqlite_error(m_db, sql);
    }
}

/// One queued write and how its caller learns the outcome. Shared between the caller and the
/// writer thread, so a caller that gave up (confirm bound) leaves nothing dangling.
struct GroupCommit::Pending {
    explicit Pending(Write w) : write(std::move(w)) {}
    Write write;
    std::int64_t result = 0;
    std::exception_ptr error;
    std::mutex mutex;
    std::condition_variable cv;
    bool done = false;

    void finish() {
        {
            const std::lock_guard<std::mutex> lock(mutex);
            done = true;
        }
        cv.notify_one();
    }
};

GroupCommit::GroupCommit(const std::string& db_path, std::chrono::milliseconds busy_timeout,
                         std::chrono::milliseconds confirm_bound, std::mutex& write_mutex,
                         Metrics& metrics)
    : m_connection(db_path, busy_timeout), m_confirm_bound(confirm_bound),
      m_write_mutex(write_mutex), m_metrics(metrics), m_writer([this] { writer_loop(); }) {}

GroupCommit::~GroupCommit() {
    {
        const std::lock_guard<std::mutex> lock(m_mutex);
        m_stopping = true;
    }
    m_wake.notify_one();
    m_writer.join();
}

std::int64_t GroupCommit::run(Write write) {
    auto pending = std::make_shared<Pending>(std::move(write));
    {
        const std::lock_guard<std::mutex> lock(m_mutex);
        if (m_stopping) {
            throw WriteNotConfirmed("the database writer is stopping");
        }
        m_queue.push_back(pending);
    }
    m_wake.notify_one();
    std::unique_lock<std::mutex> lock(pending->mutex);
    if (!pending->cv.wait_for(lock, m_confirm_bound, [&] { return pending->done; })) {
        throw WriteNotConfirmed("the database writer did not confirm the write within " +
                                std::to_string(m_confirm_bound.count()) + " ms");
    }
    if (pending->error) {
        std::rethrow_exception(pending->error);
    }
    return pending->result;
}

void GroupCommit::writer_loop() {
    std::deque<std::shared_ptr<Pending>> group;
    for (;;) {
        {
            std::unique_lock<std::mutex> lock(m_mutex);
            m_wake.wait(lock, [&] { return m_stopping || !m_queue.empty(); });
            if (m_queue.empty()) {
                return; // stopping, and everything queued has been committed
            }
            // Everything that queued while the previous group committed, up to the cap.
            while (!m_queue.empty() && group.size() < k_max_group) {
                group.push_back(std::move(m_queue.front()));
                m_queue.pop_front();
            }
        }
        commit_group(group);
        group.clear();
    }
}

void GroupCommit::commit_group(std::deque<std::shared_ptr<Pending>>& group) {
    // Nothing here may escape: the writer thread must survive any failure and answer every
    // caller. bad_alloc included (a caller then gets it, and the server answers 503).
    std::exception_ptr group_error;
    try {
        const std::lock_guard<std::mutex> write(m_write_mutex);
        m_connection.exec("BEGIN IMMEDIATE");
        std::size_t applied = 0;
        for (auto& pending : group) {
            try {
                pending->result = pending->write(m_connection);
                ++applied;
            } catch (...) {
                pending->error = std::current_exception(); // a statement's own failure
            }
            if (sqlite3_get_autocommit(m_connection.handle()) != 0) {
                // SQLite rolled the whole transaction back (SQLITE_FULL, an I/O error): the
                // writes applied before this one are gone too.
                throw std::runtime_error("the transaction was rolled back: " +
                                         std::string(sqlite3_errmsg(m_connection.handle())));
            }
        }
        m_connection.exec("COMMIT");
        m_metrics.observe_commit_group(applied);
    } catch (...) {
        group_error = std::current_exception();
        abandon_transaction(group_error);
    }
    for (auto& pending : group) {
        if (group_error && !pending->error) {
            pending->error = group_error; // not stored: the caller must not acknowledge it
        }
        pending->finish();
    }
}

void GroupCommit::abandon_transaction(std::exception_ptr& error) {
    sqlite3* db = m_connection.handle();
    if (sqlite3_get_autocommit(db) != 0) {
        return; // no transaction open (BEGIN failed, or SQLite already rolled back)
    }
    // COMMIT failed with the transaction still open (SQLITE_BUSY), or a write failed in a way
    // that left it open: end it, or the next group would run inside it and hold the lock.
    if (sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK) {
        return;
    }
    std::string message = "ROLLBACK failed after an error: " + std::string(sqlite3_errmsg(db));
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        message = std::string(e.what()) + "; " + message;
    } catch (...) {
    }
    // The next group's BEGIN fails while the transaction stays open, so each caller is told.
    error = std::make_exception_ptr(std::runtime_error(message));
}

} // namespace labctl::taskapi
