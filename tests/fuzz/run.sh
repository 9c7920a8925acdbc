#!/usr/bin/env bash
# Builds the task API's libFuzzer targets with clang and runs each for $1 seconds (default 60),
# starting from the seed corpus. Exit status non-zero on any crash; 0 seconds: build only.
# Without clang the exit status is 77 (ctest: skipped), or 1 when LABCTL_NO_SKIP=1 (CI).
# ctest runs this as "taskapi fuzz: ..." (tests/integration/taskapi/CMakeLists.txt).
# usage: tests/fuzz/run.sh [seconds] [build-dir] [target...]   (targets: task_input traceparent)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
seconds=${1:-60}
build=${2:-$here/../../build-fuzz}
shift $(($# < 2 ? $# : 2))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(task_input traceparent)
if ! command -v clang++ >/dev/null; then
    echo "fuzz: SKIPPED: clang++ is not installed (scripts/install-deps installs clang)" >&2
    [ "${LABCTL_NO_SKIP:-}" = 1 ] && exit 1
    exit 77
fi
cmake -S "$here" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ >/dev/null
ninja -C "$build" >/dev/null
[ "$seconds" -gt 0 ] || exit 0
artifacts=${FUZZ_ARTIFACTS:-$build/artifacts}
mkdir -p "$artifacts"
for target in "${targets[@]}"; do
    [ -d "$here/corpus/$target" ] || { echo "fuzz: no target '$target'" >&2; exit 2; }
    work=$(mktemp -d)
    cp "$here/corpus/$target/"* "$work/"
    echo "fuzz_$target: ${seconds}s"
    set +e
    "$build/fuzz_$target" -max_total_time="$seconds" -max_len=70000 -print_final_stats=1 \
        -artifact_prefix="$artifacts/$target-" "$work" >"$build/fuzz_$target.log" 2>&1
    status=$?
    set -e
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done|==|SUMMARY)' \
        "$build/fuzz_$target.log" || true
    rm -rf "$work"
    if [ "$status" -ne 0 ]; then
        echo "fuzz_$target: FAILED (exit $status); log $build/fuzz_$target.log, inputs in $artifacts" >&2
        tail -40 "$build/fuzz_$target.log" >&2
        exit 1
    fi
done
echo "fuzz: no crashes"
