#pragma once
// ScopeGuard runs a callable on scope exit unless dismissed: the rollback half of
// "nothing half-created is left behind".

#include <utility>

namespace labctl {

template <typename F>
class ScopeGuard {
public:
    explicit ScopeGuard(F fn) : m_fn(std::move(fn)) {}
    ScopeGuard(const ScopeGuard&) = delete;
    ScopeGuard& operator=(const ScopeGuard&) = delete;
    ~ScopeGuard() {
        if (m_active) {
            try {
                m_fn();
            } catch (...) {
                // A destructor must not throw; the rollback did what it could.
            }
        }
    }
    void dismiss() noexcept { m_active = false; }

private:
    F m_fn;
    bool m_active = true;
};

} // namespace labctl
