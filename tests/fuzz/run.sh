#!/usr/bin/env bash
# Builds the task API's libFuzzer targets with clang and runs each for $1 seconds (default 60),
# starting from the seed corpus. Exit status non-zero on any crash.
# usage: tests/fuzz/run.sh [seconds] [build-dir]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
seconds=${1:-60}
build=${2:-$here/../../build-fuzz}
cmake -S "$here" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ >/dev/null
ninja -C "$build" >/dev/null
artifacts=${FUZZ_ARTIFACTS:-$build/artifacts}
mkdir -p "$artifacts"
for target in task_input traceparent; do
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
        exit 1
    fi
done
echo "fuzz: no crashes"
