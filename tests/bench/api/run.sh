#!/usr/bin/env bash
# Benchmark of the task API (issue 3): wrk, 2 threads, 64 connections, $DURATION s per run
# against GET /api/tasks (100 tasks), POST /api/tasks and GET /health, with tracing on (an OTLP
# sink on loopback receives the export) and off (OTEL_SDK_DISABLED=true), plus the ceiling of the
# same Poco server configuration with a trivial handler (--trivial). Prints requests/s, p50/p99
# latency and the peak RSS of the server per run. Loopback only; not run by ctest.
# The modes run in ROUNDS interleaved rounds (on, off, trivial, on, off, trivial, ...) and the
# summary takes the median per mode, so a noisy neighbour on a shared machine moves every mode
# alike instead of deciding one comparison.
# usage: tests/bench/api/run.sh [build-dir]   (env: DURATION=10 THREADS=2 CONNECTIONS=64 ROUNDS=3
#        LOG_LEVEL=warn: request log lines off; LOG_LEVEL=info writes one JSON line per request)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../../build}
bin=$build/app/labctl-taskapi
duration=${DURATION:-10}
threads=${THREADS:-2}
connections=${CONNECTIONS:-64}
rounds=${ROUNDS:-3}
command -v wrk >/dev/null || { echo "bench: wrk is not installed (scripts/install-deps)" >&2; exit 2; }
[ -x "$bin" ] || { echo "bench: $bin not built (ninja -C $build labctl-taskapi)" >&2; exit 2; }

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# OTLP/HTTP sink: accepts every export with 200 and an empty protobuf response, counts bytes.
sink_port=$(free_port)
python3 - "$sink_port" >"$work/sink.log" 2>&1 <<'PY' &
import sys, http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(n)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
sink_pid=$!
pids+=("$sink_pid")
# CPU seconds the sink has used (it shares the machine's cores with the server and wrk).
sink_cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$sink_pid/stat"; }

api_pid=""
api_port=""
start_api() { # $1: otel on|off|trivial
    api_port=$(free_port)
    rm -f "$work/tasks.db"*
    local args=() disabled=true
    [ "$1" = on ] && disabled=false
    [ "$1" = trivial ] && args=(--trivial)
    HOST=127.0.0.1 PORT=$api_port DB_PATH=$work/tasks.db LOG_LEVEL=${LOG_LEVEL:-warn} \
        OTEL_SDK_DISABLED=$disabled OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$sink_port \
        "$bin" "${args[@]}" >"$work/api-$1.log" 2>&1 &
    api_pid=$!
    pids+=("$api_pid")
    for _ in $(seq 100); do
        curl -fsS "http://127.0.0.1:$api_port/health" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "bench: the API did not start" >&2
    cat "$work/api-$1.log" >&2
    exit 1
}
stop_api() {
    kill -TERM "$api_pid"
    wait "$api_pid" 2>/dev/null || true
}
peak_rss_mb() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$api_pid/status"; }
seed_tasks() {
    for i in $(seq 100); do
        curl -fsS -o /dev/null -H 'Content-Type: application/json' \
            -d "{\"title\":\"seed $i\",\"description\":\"benchmark seed task\"}" \
            "http://127.0.0.1:$api_port/api/tasks"
    done
}

printf '%-8s %-16s %12s %10s %10s %10s %9s %11s\n' tracing endpoint "req/s" p50 p99 non-2xx rss_mb sink_cpu_s
run() { # $1 label, $2 mode, $3 path, $4 extra wrk args
    local label=$1 mode=$2 path=$3
    shift 3
    local out sink_before
    sink_before=$(sink_cpu)
    out=$(wrk -t"$threads" -c"$connections" -d"${duration}s" --latency "$@" \
        "http://127.0.0.1:$api_port$path" 2>&1)
    echo "$out" >"$work/wrk-$mode-${label//\//_}.txt"
    local rps p50 p99 non2xx
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx or 3xx responses/ {print $5}' <<<"$out")
    local rss
    rss=$(peak_rss_mb)
    printf '%-8s %-16s %12s %10s %10s %10s %9s %11s\n' "$mode" "$label" "$rps" "$p50" "$p99" \
        "${non2xx:-0}" "$rss" "$(awk -v a="$sink_before" -v b="$(sink_cpu)" 'BEGIN {printf "%.2f", b - a}')"
    echo "$mode|$label|$rps|${non2xx:-0}|$rss" >>"$work/results"
}

for round in $(seq "$rounds"); do
    echo "-- round $round of $rounds"
    for mode in on off; do
        start_api "$mode"
        seed_tasks
        run "GET /api/tasks" "$mode" /api/tasks
        run "GET /health" "$mode" /health
        run "POST /api/tasks" "$mode" /api/tasks -s "$here/post.lua"
        if [ "$mode" = on ]; then
            # Telemetry the bounded export queues had to drop at saturation (counted, never
            # blocking).
            curl -fsS "http://127.0.0.1:$api_port/metrics" |
                awk '/^otel_export_(dropped_total|failed_batches_total)/ {printf "         %s %s\n", $1, $2}'
        fi
        stop_api
    done
    start_api trivial
    run "trivial" trivial /api/tasks
    stop_api
done
echo "(tasks in GET /api/tasks: 100 seeded; POST runs grow the table; wrk -t$threads -c$connections -d${duration}s)"

# Summary: medians over the rounds, the issue's targets, every non-2xx and the highest RSS.
python3 - "$work/results" <<'PY'
import statistics, sys
rows = [line.rstrip("\n").split("|") for line in open(sys.argv[1])]
def med(mode, label):
    v = [float(r[2]) for r in rows if r[0] == mode and r[1] == label]
    return statistics.median(v) if v else float("nan")
print("summary (median req/s of %d rounds):" % sum(1 for r in rows if r[0] == "trivial"))
for label in ("GET /api/tasks", "GET /health", "POST /api/tasks"):
    on, off = med("on", label), med("off", label)
    print("  %-16s on %10.0f  off %10.0f  on/off %5.1f %%" % (label, on, off, 100 * on / off))
ceiling = med("trivial", "trivial")
print("  trivial ceiling  %10.0f" % ceiling)
print("  GET /api/tasks on/off        %5.1f %%  (target >= 90 %%)" %
      (100 * med("on", "GET /api/tasks") / med("off", "GET /api/tasks")))
print("  GET /api/tasks off/ceiling   %5.1f %%  (target >= 40 %%)" %
      (100 * med("off", "GET /api/tasks") / ceiling))
print("  GET /api/tasks on/ceiling    %5.1f %%" % (100 * med("on", "GET /api/tasks") / ceiling))
print("  POST non-2xx, all rounds     %d  (target 0)" %
      sum(int(r[3]) for r in rows if r[1] == "POST /api/tasks"))
print("  peak RSS, all runs           %.1f MB  (target <= 40 MB)" %
      max(float(r[4]) for r in rows if r[0] != "trivial"))
PY
