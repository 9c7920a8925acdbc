#pragma once
// Group commit: one write connection; the writes of concurrent requests that queued while the
// previous transaction was committing join the next transaction, so N writers share one COMMIT
// and one fsync (WAL, synchronous=FULL) instead of paying one each. Each caller gets its result
// only after COMMIT has returned (its row is durable). Leader/follower: a caller that finds
// nobody committing commits itself at once (a lone writer waits for nothing and no other
// thread); callers that queue meanwhile wait, and the first of them commits all of them next
// (at most k_max_group writes), so a group is simply whatever arrived during the previous
// commit.

#include <sqlite3.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace labctl::taskapi {

class Metrics;

/// The writer's connection as a write sees it: prepared statements cached by SQL text.
class WriterConnection {
public:
    WriterConnection(const std::string& db_path, std::chrono::milliseconds busy_timeout);
    ~WriterConnection();
    WriterConnection(const WriterConnection&) = delete;
    WriterConnection& operator=(const WriterConnection&) = delete;

    sqlite3* handle() const { return m_db; }
    /// The prepared statement for `sql`, reset and with cleared bindings.
    sqlite3_stmt* statement(const std::string& sql);
    /// Runs a statement without results (BEGIN, COMMIT, ...); throws naming it on failure.
    void exec(const char* sql);

private:
    sqlite3* m_db = nullptr;
    std::map<std::string, sqlite3_stmt*, std::less<>> m_statements;
};

/// The group commit did not confirm a write within the caller's bound: it may or may not be
/// stored, and it was not acknowledged (the server answers 503).
class WriteNotConfirmed : public std::runtime_error {
    using std::runtime_error::runtime_error;
};

class GroupCommit {
public:
    /// A write: runs on the leader's thread inside the group's transaction and returns what the
    /// caller needs (a row id, a change count). It owns its data (the caller may have given up).
    using Write = std::function<std::int64_t(WriterConnection&)>;

    static constexpr std::size_t k_max_group = 256;

    /// Opens the write connection. `write_mutex` is held around each
    /// group's transaction so other writers of this process (the DB smoke test) never contend
    /// inside SQLite's busy handler. Throws when the database cannot be opened.
    GroupCommit(const std::string& db_path, std::chrono::milliseconds busy_timeout,
                std::chrono::milliseconds confirm_bound, std::mutex& write_mutex, Metrics& metrics);
    /// Waits for a group being committed (callers have stopped: the server stopped first).
    ~GroupCommit();
    GroupCommit(const GroupCommit&) = delete;
    GroupCommit& operator=(const GroupCommit&) = delete;

    /// Queues `write` for the next group (committing that group itself when it is the first in
    /// line) and returns once that group's COMMIT returned. Returns
    /// the write's result; throws its error, the group's (nothing of the group was stored), or
    /// WriteNotConfirmed after the confirm bound.
    std::int64_t run(Write write);

private:
    struct Pending;
    /// With m_mutex held (and released while committing): commits the queue's front group, marks
    /// it done, then hands the lead to the next queued write or goes idle.
    void lead(std::unique_lock<std::mutex>& lock);
    /// Runs a group's writes in one transaction; sets each result or error (done is lead()'s).
    void commit_group(std::vector<std::shared_ptr<Pending>>& group);
    /// Rolls back a transaction an error left open; a failed ROLLBACK is added to `error`.
    void abandon_transaction(std::exception_ptr& error);

    WriterConnection m_connection;
    std::chrono::milliseconds m_confirm_bound;
    std::mutex& m_write_mutex;
    Metrics& m_metrics;
    std::mutex m_mutex; ///< guards the queue, the leader flag and every Pending's state
    std::condition_variable m_idle;
    std::deque<std::shared_ptr<Pending>> m_queue;
    std::vector<std::shared_ptr<Pending>> m_group; ///< the leader's; capacity k_max_group
    bool m_leader_active = false;
    bool m_stopping = false;
};

} // namespace labctl::taskapi
