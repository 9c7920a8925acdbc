#pragma once
// Private to src/provision: what a provision run made, undone in reverse order when it fails, and
// the hint that says what was rolled back or what is left.

#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace labctl::provision {

/// What this run made, undone in reverse order when the run fails.
class Journal {
public:
    /// What a rollback did: the objects removed and those left (with why), in undo order.
    struct Outcome {
        std::vector<std::string> removed;
        std::vector<std::string> left;
    };

    void add(std::string what, std::function<void()> undo) {
        const std::lock_guard lock(m_mutex);
        m_entries.push_back({std::move(what), std::move(undo)});
    }

    /// Runs every undo step, newest first; a step that throws is logged and reported as left.
    Outcome rollback();

    /// Forgets the entries (--keep-on-failure) and returns what they named.
    Outcome keep() {
        const std::lock_guard lock(m_mutex);
        Outcome out;
        for (auto it = m_entries.rbegin(); it != m_entries.rend(); ++it)
            out.left.push_back(it->what);
        m_entries.clear();
        return out;
    }

private:
    struct Entry {
        std::string what;
        std::function<void()> undo;
    };
    std::mutex m_mutex;
    std::vector<Entry> m_entries;
};

/// The hint of a failed provisioning: what was rolled back (or, with `kept`, what
/// --keep-on-failure left), what the rollback could not remove, and that 'labctl down' removes
/// what is left (once libvirt answers again when the connection was `lost`).
std::string rollback_hint(const Journal::Outcome& outcome, bool kept, bool lost);

} // namespace labctl::provision
