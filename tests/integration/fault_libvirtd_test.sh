#!/bin/bash
# Run by fault_libvirtd_test.cpp inside `unshare --net --mount --fork`: a private libvirtd (its
# own /run/libvirt, /var/lib/libvirt, /var/cache/libvirt, /etc/libvirt copy and /var/log/libvirt,
# bind-mounted in this mount namespace only; no network reachable but lo) that this script may
# kill. It provisions a lab whose 4 GiB sparse raw base image streams into a dir pool and, once
# the upload runs, either kills libvirtd (mode kill: SIGKILL, the socket closes) or stops it
# (mode stop: SIGSTOP, the socket stays open and nothing answers, so only keepalive can end the
# wait); records how labctl ended, then kills and restarts libvirtd, runs `labctl down` and lists
# what is left. Results go to files in $1 for the C++ test to assert.
# Usage: fault_libvirtd_test.sh <work dir> <labctl binary> kill|stop
set -u
W=$1
LABCTL=$2
MODE=$3
P=$W/state
mkdir -p "$W/pool" "$W/images"
# shellcheck source=tests/support/private-libvirtd.sh
. "$(dirname "$0")/../support/private-libvirtd.sh"
plv_setup "$P" || exit $?

start_daemons() { plv_start "$P"; }
stop_daemons() { plv_stop "$P"; }
trap stop_daemons EXIT

start_daemons || exit 13
virsh -q -c qemu:///system pool-define-as faultpool dir --target "$W/pool" >/dev/null || exit 14
virsh -q -c qemu:///system pool-start faultpool >/dev/null || exit 14
virsh -q -c qemu:///system pool-autostart faultpool >/dev/null || exit 14
truncate -s 4G "$W/images/base.raw"

cd "$W" || exit 15
now() { date +%s.%N; }
"$LABCTL" provision -f "$W/lab.yaml" >"$W/provision.out" 2>"$W/provision.err" &
LPID=$!
# The upload runs once the base volume's file exists in the pool.
for _ in $(seq 300); do
    ls "$W"/pool/* >/dev/null 2>&1 && break
    sleep 0.05
done
sleep 0.5
ls -la "$W/pool" >"$W/pool_at_kill.txt" 2>&1
if [ "$MODE" = stop ]; then kill -STOP "$(cat "$P/libvirtd.pid")"; else kill -9 "$(cat "$P/libvirtd.pid")"; fi
echo "$(now)" >"$W/killed_at"
wait "$LPID"
echo $? >"$W/provision.rc"
echo "$(now)" >"$W/ended_at"
kill -9 "$(cat "$P/libvirtd.pid")" 2>/dev/null
for _ in $(seq 50); do kill -0 "$(cat "$P/libvirtd.pid")" 2>/dev/null || break; sleep 0.1; done
rm -f "$P/libvirtd.pid"

start_daemons || exit 16
"$LABCTL" down -f "$W/lab.yaml" >"$W/down.out" 2>"$W/down.err"
echo $? >"$W/down.rc"
virsh -q -c qemu:///system vol-list faultpool >"$W/vols_after_down.txt" 2>&1
ls -A "$W/pool" >"$W/pool_after_down.txt" 2>&1
exit 0
