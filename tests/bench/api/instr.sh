#!/usr/bin/env bash
# Instructions per request of the task API under callgrind (issue 3): unlike wrk's requests/s
# this does not depend on what else the machine is doing. All threads of the server are counted
# (request threads, batch processors and OTLP exporters), so the cost of exporting is included.
# Modes: on (tracing, an OTLP sink on loopback), off (OTEL_SDK_DISABLED=true), trivial (--trivial).
# Counters are zeroed after seeding and a warm-up, then `ab -k` sends a fixed number of keep-alive
# requests to GET /api/tasks (100 tasks); after a pause longer than the export delay (so queued
# spans and logs are exported and counted) the totals are dumped. Loopback only.
# usage: tests/bench/api/instr.sh [build-dir|binary] [modes...]   (env: REQUESTS=2000 CONCURRENCY=16
#        LOG_LEVEL=warn KEEP=dir: keep the callgrind.out files there for callgrind_annotate,
#        PRELOAD=lib.so: another malloc, say)
set -euo pipefail
# vgdb names its FIFOs after the user: both sides must agree (unset in some containers).
export USER=${USER:-$(id -un)} LOGNAME=${LOGNAME:-$(id -un)}
here=$(cd "$(dirname "$0")" && pwd)
target=${1:-$here/../../../build}
shift || true
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(off on trivial)
bin=$target
[ -d "$target" ] && bin=$target/app/labctl-taskapi
requests=${REQUESTS:-2000}
concurrency=${CONCURRENCY:-16}
for tool in valgrind callgrind_control ab curl python3; do
    command -v "$tool" >/dev/null || { echo "instr: $tool is not installed (valgrind, apache2-utils)" >&2; exit 2; }
done
[ -x "$bin" ] || { echo "instr: $bin not built" >&2; exit 2; }

work=$(mktemp -d)
keep=${KEEP:-}
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

sink_port=$(free_port)
python3 - "$sink_port" >"$work/sink.log" 2>&1 <<'PY' &
import sys, http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
pids+=($!)

printf '%-8s %14s %12s\n' mode instructions "instr/req"
for mode in "${modes[@]}"; do
    port=$(free_port)
    rm -f "$work/tasks.db"*
    args=()
    disabled=true
    [ "$mode" = on ] && disabled=false
    [ "$mode" = trivial ] && args=(--trivial)
    out=$work/callgrind.out.$mode
    HOST=127.0.0.1 PORT=$port DB_PATH=$work/tasks.db LOG_LEVEL=${LOG_LEVEL:-warn} \
        OTEL_SDK_DISABLED=$disabled OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$sink_port \
        env ${PRELOAD:+LD_PRELOAD=$PRELOAD} valgrind --tool=callgrind --callgrind-out-file="$out" --dump-instr=no \
        "$bin" "${args[@]}" >"$work/api-$mode.log" 2>&1 &
    vpid=$!
    pids+=("$vpid")
    for _ in $(seq 600); do
        curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
        sleep 0.1
    done
    if [ "$mode" != trivial ]; then
        for i in $(seq 100); do
            curl -fsS -o /dev/null -H 'Content-Type: application/json' \
                -d "{\"title\":\"seed $i\",\"description\":\"benchmark seed task\"}" \
                "http://127.0.0.1:$port/api/tasks"
        done
    fi
    ab -k -q -n 200 -c "$concurrency" "http://127.0.0.1:$port/api/tasks" >/dev/null
    sleep 3 # the warm-up's telemetry is exported before the counters are zeroed
    # vgdb names its FIFOs after $HOST too, which the server reads as its bind address.
    HOST=127.0.0.1 callgrind_control -z "$vpid" >/dev/null 2>&1
    ab -k -q -n "$requests" -c "$concurrency" "http://127.0.0.1:$port/api/tasks" >"$work/ab-$mode.txt"
    sleep 3 # export delay 1 s: what the requests queued is exported and counted
    HOST=127.0.0.1 callgrind_control -d "$vpid" >/dev/null 2>&1
    kill -TERM "$vpid"
    wait "$vpid" 2>/dev/null || true
    failed=$(awk '/^Failed requests/ {print $3} /^Non-2xx/ {print "non2xx:" $3}' "$work/ab-$mode.txt" | tr '\n' ' ')
    # Connections must be reused (as wrk's are): a new connection per request costs far more.
    keepalive=$(awk '/^Keep-Alive requests/ {print $3}' "$work/ab-$mode.txt")
    # The dump after zeroing is the highest-numbered part file.
    part=$(ls -1 "$out".* 2>/dev/null | sort -t. -k3 -n | tail -1)
    total=$(awk '/^(summary|totals):/ {print $2; exit}' "$part")
    printf '%-8s %14s %12s   failed: %s keep-alive: %s\n' "$mode" "$total" "$((total / requests))" \
        "$failed" "${keepalive:-0}/$requests"
    if [ -n "$keep" ]; then
        mkdir -p "$keep"
        cp "$part" "$keep/callgrind.$mode"
    fi
done
