// LD_PRELOAD shim for the task API's out-of-memory fault test (taskapi_faults_test): in the
// process it is preloaded into, operator new throws std::bad_alloc for any single allocation
// larger than LABCTL_TEST_FAIL_NEW_ABOVE bytes, as when the heap cannot grow for one large
// buffer while small allocations still succeed. Unset or 0: nothing fails.

#include <cstdlib>
#include <new>

namespace {

std::size_t fail_above() {
    static const std::size_t k_limit = [] {
        const char* value = std::getenv("LABCTL_TEST_FAIL_NEW_ABOVE");
        return value != nullptr ? static_cast<std::size_t>(std::strtoull(value, nullptr, 10))
                                : std::size_t{0};
    }();
    return k_limit;
}

} // namespace

void* operator new(std::size_t size) {
    const std::size_t limit = fail_above();
    if (limit > 0 && size > limit) {
        throw std::bad_alloc();
    }
    if (void* p = std::malloc(size == 0 ? 1 : size)) {
        return p;
    }
    throw std::bad_alloc();
}

void* operator new[](std::size_t size) {
    return ::operator new(size);
}

void operator delete(void* p) noexcept {
    std::free(p);
}

void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}

void operator delete[](void* p) noexcept {
    std::free(p);
}

void operator delete[](void* p, std::size_t) noexcept {
    std::free(p);
}
