#!/bin/sh
# Benchmark: wall time of a full `labctl verify` (the six HTTP checks) against the healthy contract
# fixtures, all checks in parallel vs --parallel 1. Like a real stack, Tempo finds a trace only
# after 3 polls and Loki a log line after 2 (ingestion delay), and every answer takes 20 ms.
# Usage: tests/bench/verify/run.sh BUILD_DIR [RUNS]   (needs labctl and verify_fake_stack_server)
# Only 127.0.0.1 is contacted.
set -eu
build=${1:?usage: run.sh BUILD_DIR [RUNS]}
runs=${2:-3}
labctl=$build/labctl
[ -x "$labctl" ] || labctl=$build/labctl
server=$build/tests/integration/verify/verify_fake_stack_server
[ -x "$labctl" ] && [ -x "$server" ] || {
    echo "build labctl and verify_fake_stack_server in $build first" >&2
    exit 2
}
dir=$(mktemp -d)
trap 'exec 3>&-; wait 2>/dev/null; rm -rf "$dir"' EXIT
mkfifo "$dir/in"
"$server" --tempo-polls=3 --loki-polls=2 --latency-ms=20 <"$dir/in" >"$dir/endpoints" &
exec 3>"$dir/in"
for _ in $(seq 50); do
    [ "$(wc -l <"$dir/endpoints")" -ge 8 ] && break
    sleep 0.1
done
{
    printf 'version: 1\nproject: bench\nvms:\n  - name: node1\nverify:\n  deadline: 60s\n'
    cat "$dir/endpoints"
} >"$dir/lab.yaml"

checks="--only stack.health --only prometheus.targets --only prometheus.sli --only trace.e2e \
--only logs.correlated --only grafana.provisioned"
measure() { # $1 = extra args; prints seconds of the best run
    best=""
    for _ in $(seq "$runs"); do
        # shellcheck disable=SC2086
        s=$("$labctl" -q -f "$dir/lab.yaml" --output json verify --host 127.0.0.1 $checks $1 |
            jq -r '.summary.seconds')
        if [ -z "$best" ] || [ "$(echo "$s < $best" | bc)" = 1 ]; then best=$s; fi
    done
    echo "$best"
}
par=$(measure "")
seq1=$(measure "--parallel 1")
echo "labctl verify, 6 checks against healthy fixtures (best of $runs):"
echo "  parallel (default): ${par}s"
echo "  --parallel 1:       ${seq1}s"
echo "  ratio:              $(echo "scale=2; $seq1 / $par" | bc)x"
