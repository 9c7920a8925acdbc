#!/usr/bin/env bash
# Benchmark of the task API (issue 3): wrk, 2 threads, 64 connections, $DURATION s per run
# against GET /api/tasks (100 tasks), POST /api/tasks and GET /health, with tracing on (an OTLP
# sink on loopback receives the export) and off (OTEL_SDK_DISABLED=true), plus the ceiling of the
# same Poco server configuration with a trivial handler (--trivial). Prints requests/s, p50/p99
# latency, the server's CPU time per request (user and system, all threads) and its peak RSS per
# run. Loopback only; not run by ctest.
# The modes run in ROUNDS interleaved rounds (on, off, trivial, on, off, trivial, ...) and the
# summary takes the median per mode, so a noisy neighbour on a shared machine moves every mode
# alike instead of deciding one comparison.
# Each round runs at every log level of LOG_LEVELS: at `warn` a request writes no log line, so
# on/off measures tracing alone; at `info` (the deployed default) every request also writes a
# JSON line to stdout and, with telemetry on, an OTLP log record.
# POST /api/tasks also runs with one transaction per request (DB_GROUP_COMMIT=off, mode
# `percommit`, tracing on) beside the default group commit (mode `on`), at 64 connections and
# with a lone writer (1 connection: group commit must not delay it); the summary compares their
# medians, with the disk's synchronous 4 KiB write rate (dd oflag=dsync) measured on the same
# file system for scale (issue 16).
# usage: tests/bench/api/run.sh [build-dir]   (env: DURATION=10 THREADS=2 CONNECTIONS=64 ROUNDS=3
#        LOG_LEVELS="warn info")
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../../build}
bin=$build/app/labctl-taskapi
duration=${DURATION:-10}
threads=${THREADS:-2}
connections=${CONNECTIONS:-64}
rounds=${ROUNDS:-3}
read -r -a log_levels <<<"${LOG_LEVELS:-warn info}"
log_level=warn
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
start_api() { # $1: otel on|off|trivial, or percommit (on, one transaction per request)
    api_port=$(free_port)
    rm -f "$work/tasks.db"*
    local args=() disabled=true group=on
    [ "$1" = on ] && disabled=false
    [ "$1" = percommit ] && disabled=false group=off
    [ "$1" = trivial ] && args=(--trivial)
    HOST=127.0.0.1 PORT=$api_port DB_PATH=$work/tasks.db LOG_LEVEL=$log_level \
        OTEL_SDK_DISABLED=$disabled OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$sink_port \
        DB_GROUP_COMMIT=$group "$bin" "${args[@]}" >"$work/api-$1.log" 2>&1 &
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

# The disk's synchronous-write rate where the database lives: the ceiling of one fsync per write.
dsync_rate=$(cd "$work" && dd if=/dev/zero of=dsync.probe bs=4k count=2000 oflag=dsync 2>&1 |
    awk '/copied/ {for (i = 1; i <= NF; i++) if ($i == "s,") print int(2000 / $(i - 1))}')
rm -f "$work/dsync.probe"
echo "disk: ${dsync_rate:-?} synchronous 4 KiB writes/s (dd oflag=dsync, 2000 writes, same file system)"

printf '%-6s %-9s %-16s %10s %9s %9s %7s %7s %7s %6s %6s\n' log mode endpoint "req/s" p50 p99 \
    non2xx usr_us sys_us rss_mb sink_s
# CPU seconds (user, system) the server process has used, all its threads included.
server_cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f %.3f", $14 / hz, $15 / hz}' "/proc/$api_pid/stat"; }
# wrk's latencies (e.g. 512.00us, 30.12ms, 1.02s) in milliseconds.
to_ms() { awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    printf "%.3f", (u == "us") ? n / 1000 : (u == "s") ? n * 1000 : (u == "m") ? n * 60000 : n }'; }
run() { # $1 label, $2 mode, $3 path, $4 extra wrk args
    local label=$1 mode=$2 path=$3
    shift 3
    local out sink_before cpu_before cpu_after
    sink_before=$(sink_cpu)
    cpu_before=$(server_cpu)
    out=$(wrk -t"$threads" -c"$connections" -d"${duration}s" --latency "$@" \
        "http://127.0.0.1:$api_port$path" 2>&1)
    cpu_after=$(server_cpu)
    echo "$out" >"$work/wrk-$mode-${label//\//_}.txt"
    local rps p50 p99 non2xx requests usr sys
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    p50=$(awk '$1=="50%" {print $2}' <<<"$out")
    p99=$(awk '$1=="99%" {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx or 3xx responses/ {print $5}' <<<"$out")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    # Server CPU per request: unlike requests/s it does not depend on how much of the machine
    # the load generator and the neighbours took during the run.
    read -r usr sys < <(awk -v b="$cpu_before" -v a="$cpu_after" -v n="$requests" 'BEGIN {
        split(b, x, " "); split(a, y, " ");
        printf "%.2f %.2f\n", (y[1] - x[1]) * 1e6 / n, (y[2] - x[2]) * 1e6 / n }')
    local rss
    rss=$(peak_rss_mb)
    local level=$log_level
    [ "$mode" = trivial ] && level=-
    printf '%-6s %-9s %-16s %10s %9s %9s %7s %7s %7s %6s %6s\n' "$level" "$mode" "$label" "$rps" \
        "$p50" "$p99" "${non2xx:-0}" "$usr" "$sys" "$rss" \
        "$(awk -v a="$sink_before" -v b="$(sink_cpu)" 'BEGIN {printf "%.2f", b - a}')"
    echo "$level|$mode|$label|$rps|${non2xx:-0}|$rss|$usr|$sys|$(to_ms "$p99")" >>"$work/results"
}

for round in $(seq "$rounds"); do
    echo "-- round $round of $rounds"
    for log_level in "${log_levels[@]}"; do
        for mode in on off; do
            start_api "$mode"
            seed_tasks
            run "GET /api/tasks" "$mode" /api/tasks
            run "GET /health" "$mode" /health
            # The lone writer first: after the 64-connection POST run the exporter still sends
            # its backlog for seconds and would take CPU from whichever mode followed it.
            [ "$mode" = on ] && run "POST 1 writer" "$mode" /api/tasks -s "$here/post.lua" -t1 -c1
            run "POST /api/tasks" "$mode" /api/tasks -s "$here/post.lua"
            if [ "$mode" = on ]; then
                # Telemetry the bounded export queues had to drop at saturation (counted,
                # never blocking).
                curl -fsS "http://127.0.0.1:$api_port/metrics" |
                    awk '/^otel_export_(dropped_total|failed_batches_total)/ {printf "                %s %s\n", $1, $2}'
            fi
            stop_api
        done
        # The same POST runs with one transaction (and one fsync) per request.
        start_api percommit
        seed_tasks
        run "POST 1 writer" percommit /api/tasks -s "$here/post.lua" -t1 -c1
        run "POST /api/tasks" percommit /api/tasks -s "$here/post.lua"
        stop_api
    done
    log_level=warn
    start_api trivial
    run "trivial" trivial /api/tasks
    stop_api
done
echo "(tasks in GET /api/tasks: 100 seeded; POST runs grow the table; wrk -t$threads -c$connections -d${duration}s)"

# Summary: medians over the rounds, the issue's targets, every non-2xx and the highest RSS.
python3 - "$work/results" <<'PY'
import statistics, sys
rows = [line.rstrip("\n").split("|") for line in open(sys.argv[1])]
def values(level, mode, label, col):
    return [float(r[col]) for r in rows if r[0] == level and r[1] == mode and r[2] == label]
def med(level, mode, label, col=3):
    v = values(level, mode, label, col)
    return statistics.median(v) if v else float("nan")
def spread(level, mode, label):
    v = values(level, mode, label, 3)
    return "%.0f-%.0f" % (min(v), max(v)) if v else "-"
def cpu(level, mode, label):  # median server CPU per request, user + system, in us
    u, s = values(level, mode, label, 6), values(level, mode, label, 7)
    return statistics.median([a + b for a, b in zip(u, s)]) if u else float("nan")
ceiling = med("-", "trivial", "trivial")
print("summary: medians of %d rounds (req/s min-max in brackets); cpu = server CPU per request"
      % sum(1 for r in rows if r[1] == "trivial"))
print("  trivial ceiling %8.0f req/s [%s], cpu %.1f us" %
      (ceiling, spread("-", "trivial", "trivial"), cpu("-", "trivial", "trivial")))
for level in dict.fromkeys(r[0] for r in rows if r[0] != "-"):
    print("  LOG_LEVEL=%s" % level)
    for label in ("GET /api/tasks", "GET /health", "POST /api/tasks"):
        on, off = med(level, "on", label), med(level, "off", label)
        con, coff = cpu(level, "on", label), cpu(level, "off", label)
        print("    %-16s on %7.0f [%s] off %7.0f [%s]  req/s on/off %5.1f %%;"
              "  cpu on %6.1f off %6.1f us: off/on %5.1f %%" %
              (label, on, spread(level, "on", label), off, spread(level, "off", label),
               100 * on / off, con, coff, 100 * coff / con))
    print("    GET /api/tasks tracing on vs off: req/s %5.1f %%, by CPU per request %5.1f %%"
          "  (target >= 90 %%)" %
          (100 * med(level, "on", "GET /api/tasks") / med(level, "off", "GET /api/tasks"),
           100 * cpu(level, "off", "GET /api/tasks") / cpu(level, "on", "GET /api/tasks")))
    print("    GET /api/tasks off / trivial ceiling: req/s %5.1f %%, by CPU per request %5.1f %%"
          "  (target >= 40 %%)" %
          (100 * med(level, "off", "GET /api/tasks") / ceiling,
           100 * cpu("-", "trivial", "trivial") / cpu(level, "off", "GET /api/tasks")))
def p99(level, mode, label):
    v = values(level, mode, label, 8)
    return statistics.median(v) if v else float("nan")
for level in dict.fromkeys(r[0] for r in rows if r[0] != "-"):
    print("  LOG_LEVEL=%s POST, group commit vs one transaction per request (tracing on):" % level)
    for label in ("POST /api/tasks", "POST 1 writer"):
        g, p = med(level, "on", label), med(level, "percommit", label)
        print("    %-16s group %7.0f [%s] p99 %7.2f ms | per request %7.0f [%s] p99 %7.2f ms"
              "  -> %4.2fx req/s" % (label, g, spread(level, "on", label), p99(level, "on", label),
                                    p, spread(level, "percommit", label),
                                    p99(level, "percommit", label), g / p))
print("  POST non-2xx, all runs         %d  (target 0)" %
      sum(int(r[4]) for r in rows if r[2] == "POST /api/tasks"))
print("  peak RSS, all runs             %.1f MB  (target <= 40 MB)" %
      max(float(r[5]) for r in rows if r[1] != "trivial"))
PY
