#pragma once
// Integration tests run one Catch2 test case per ctest test. When a prerequisite is truly absent
// the test prints why and exits with k_skip_return_code, which ctest reports as "Skipped".

#include <cstdio>
#include <cstdlib>
#include <string>

namespace labctl::test {

inline constexpr int k_skip_return_code = 77;

[[noreturn]] inline void skip(const std::string& reason) {
    std::fprintf(stdout, "SKIPPED: %s\n", reason.c_str());
    std::fflush(stdout);
    std::fflush(stderr);
    std::_Exit(k_skip_return_code);
}

/// Skips unless `program` is on PATH.
void require_program(const std::string& program);

} // namespace labctl::test
