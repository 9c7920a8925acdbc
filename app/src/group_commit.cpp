#include "group_commit.hpp"

#include <algorithm>
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

/// One queued write and how its caller learns the outcome. Shared between its caller and the
/// leader committing it, so a caller that gave up (confirm bound) leaves nothing dangling. All
/// fields but `write` are guarded by GroupCommit::m_mutex, which `cv` waits on.
struct GroupCommit::Pending {
    explicit Pending(Write w) : write(std::move(w)) {}
    Write write;
    std::int64_t result = 0;
    std::exception_ptr error;
    std::condition_variable cv;
    bool done = false; ///< its group's COMMIT returned (or failed): result or error is set
    bool lead = false; ///< its caller commits the next group
};

GroupCommit::GroupCommit(const std::string& db_path, std::chrono::milliseconds busy_timeout,
                         std::chrono::milliseconds confirm_bound, std::mutex& write_mutex,
                         Metrics& metrics)
    : m_connection(db_path, busy_timeout), m_confirm_bound(confirm_bound),
      m_write_mutex(write_mutex), m_metrics(metrics) {
    m_group.reserve(k_max_group); // the leader never allocates to take a group
}

GroupCommit::~GroupCommit() {
    // The server has stopped calling; a leader still committing finishes first. Bounded by its
    // statements' busy timeout, and the whole shutdown by main's 9.5 s watchdog.
    std::unique_lock<std::mutex> lock(m_mutex);
    m_stopping = true;
    m_idle.wait(lock, [&] { return !m_leader_active; });
}

std::int64_t GroupCommit::run(Write write) {
    auto pending = std::make_shared<Pending>(std::move(write));
    std::unique_lock<std::mutex> lock(m_mutex);
    if (m_stopping) {
        throw WriteNotConfirmed("the database writer is stopping");
    }
    m_queue.push_back(pending);
    if (!m_leader_active) {
        // Nobody is committing: this caller commits its own write at once (a group of one
        // unless others queue meanwhile), with no hand-off to another thread.
        m_leader_active = true;
        pending->lead = true;
    } else if (!pending->cv.wait_for(lock, m_confirm_bound,
                                     [&] { return pending->done || pending->lead; })) {
        const auto queued = std::find(m_queue.begin(), m_queue.end(), pending);
        if (queued != m_queue.end()) {
            m_queue.erase(queued); // never taken: it will not be written
        }                          // else taken by a leader: it may still land, unacknowledged
        throw WriteNotConfirmed("the database writer did not confirm the write within " +
                                std::to_string(m_confirm_bound.count()) + " ms");
    }
    if (pending->lead && !pending->done) {
        lead(lock);
    }
    if (pending->error) {
        std::rethrow_exception(pending->error);
    }
    return pending->result;
}

void GroupCommit::lead(std::unique_lock<std::mutex>& lock) {
    // Everything queued, up to the cap, in arrival order: the leader's own write is first (it
    // was alone in the queue, or it was handed the lead as the queue's front).
    while (!m_queue.empty() && m_group.size() < k_max_group) {
        m_group.push_back(std::move(m_queue.front()));
        m_queue.pop_front();
    }
    lock.unlock();
    commit_group(m_group);
    lock.lock();
    for (auto& pending : m_group) {
        pending->done = true;
        pending->cv.notify_one();
    }
    m_group.clear();
    if (m_queue.empty()) {
        m_leader_active = false;
        m_idle.notify_all();
        return;
    }
    // Writes queued while this group committed: the first one's caller commits them next, and
    // this caller answers its own request now.
    m_queue.front()->lead = true;
    m_queue.front()->cv.notify_one();
}

void GroupCommit::commit_group(std::vector<std::shared_ptr<Pending>>& group) {
    // Nothing here may escape: the leader must mark every write of its group done whatever
    // happens. bad_alloc included (a caller then gets it, and the server answers 503).
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
