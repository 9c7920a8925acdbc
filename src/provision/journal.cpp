#include "journal.hpp"

#include <fmt/format.h>

#include <exception>

#include <labctl/core/log.hpp>

namespace labctl::provision {

Journal::Outcome Journal::rollback() {
    // The undo steps run without the journal's lock: they take the network's lock, which
    // dhcp_host holds while it adds to the journal (the opposite order would deadlock). An entry
    // added while a batch is undone is undone in the next batch, so nothing made is forgotten.
    Outcome out;
    for (;;) {
        std::vector<Entry> entries;
        {
            const std::lock_guard lock(m_mutex);
            entries.swap(m_entries);
        }
        if (entries.empty())
            return out;
        for (auto it = entries.rbegin(); it != entries.rend(); ++it) {
            try {
                it->undo();
                log::info("removed {} (created by this run)", it->what);
                out.removed.push_back(it->what);
            } catch (const std::exception& e) {
                log::warn("could not remove {}: {}", it->what, e.what());
                out.left.push_back(it->what);
            }
        }
    }
}

/// The hint of a failed provisioning: what was rolled back, or what is left and how it goes.
std::string rollback_hint(const Journal::Outcome& o, bool kept, bool lost) {
    std::string hint;
    if (kept)
        hint =
            fmt::format("--keep-on-failure: left what this run made ({})", fmt::join(o.left, ", "));
    else if (o.left.empty())
        hint = o.removed.empty()
                   ? "this run had made nothing: there was nothing to roll back"
                   : fmt::format("rolled back what this run made: {}", fmt::join(o.removed, ", "));
    else
        hint = fmt::format("{}left: {} (the rollback could not remove {})",
                           o.removed.empty()
                               ? std::string()
                               : fmt::format("rolled back: {}; ", fmt::join(o.removed, ", ")),
                           fmt::join(o.left, ", "), o.left.size() == 1 ? "it" : "them");
    if (kept || !o.left.empty())
        hint += lost ? "; once libvirt answers again, 'labctl down' removes what is left"
                     : "; 'labctl down' removes what is left";
    return hint;
}

} // namespace labctl::provision
