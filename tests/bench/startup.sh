#!/usr/bin/env bash
# Prints labctl's start-up time (`labctl --help`, median/min/max of N runs) and binary size.
# usage: tests/bench/startup.sh [path/to/labctl] [runs=20]
set -euo pipefail
bin=${1:-build/ci/labctl}
runs=${2:-20}
[ -x "$bin" ] || { echo "startup.sh: no executable at $bin (build first)" >&2; exit 2; }
times=()
for _ in $(seq "$runs"); do
    t0=$(date +%s%N)
    "$bin" --help >/dev/null
    t1=$(date +%s%N)
    times+=($(( (t1 - t0) / 1000 )))
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(sed -n "$(( (runs + 1) / 2 ))p" <<<"$sorted")
min=$(head -1 <<<"$sorted"); max=$(tail -1 <<<"$sorted")
size=$(stat -c %s "$bin")
stripped=$(mktemp); cp "$bin" "$stripped"; strip "$stripped"; ssize=$(stat -c %s "$stripped"); rm -f "$stripped"
awk -v n="$runs" -v med="$median" -v lo="$min" -v hi="$max" -v sz="$size" -v ss="$ssize" 'BEGIN {
    printf "labctl --help start-up over %d runs: median %.2f ms (min %.2f, max %.2f)\n", n, med/1000, lo/1000, hi/1000
    printf "binary size: %d bytes (%.1f MiB), stripped %d bytes (%.1f MiB)\n", sz, sz/1048576, ss, ss/1048576
}'
