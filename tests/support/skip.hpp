#pragma once
// Integration tests run one Catch2 test case per ctest test. When a prerequisite is truly absent
// the test prints why and exits with k_skip_return_code, which ctest reports as "Skipped".

#include <cstdio>
#include <cstdlib>
#include <string>

namespace labctl::test {

inline constexpr int k_skip_return_code = 77;

/// Exits as "skipped" with the reason. Under LABCTL_NO_SKIP=1 (scripts/test sets it when CI=true,
/// where every prerequisite is installed) a missing prerequisite is a failure instead, so CI can
/// never go green by skipping.
[[noreturn]] inline void skip(const std::string& reason) {
    if (const char* strict = std::getenv("LABCTL_NO_SKIP"); strict && std::string(strict) == "1") {
        std::fprintf(stdout, "FAILED (LABCTL_NO_SKIP=1, a skip is not allowed here): %s\n",
                     reason.c_str());
        std::fflush(stdout);
        std::_Exit(1);
    }
    std::fprintf(stdout, "SKIPPED: %s\n", reason.c_str());
    std::fflush(stdout);
    std::fflush(stderr);
    std::_Exit(k_skip_return_code);
}

/// Skips unless `program` is on PATH.
void require_program(const std::string& program);

} // namespace labctl::test
