#!/bin/bash
# Run by fault_libvirtd_test.cpp inside `unshare --net --mount --fork`: a private libvirtd (its
# own /run/libvirt, /var/lib/libvirt, /var/cache/libvirt, /etc/libvirt copy and /var/log/libvirt,
# bind-mounted in this mount namespace only; no network reachable but lo) that this script may
# kill. It provisions a lab whose 4 GiB sparse raw base image streams into a dir pool, kills
# libvirtd (SIGKILL) once the upload runs, records how labctl ended, restarts libvirtd, runs
# `labctl down` and lists what is left. Results go to files in $1 for the C++ test to assert.
# Usage: fault_libvirtd_test.sh <work dir> <labctl binary>
set -u
W=$1
LABCTL=$2
P=$W/state
mkdir -p "$P"/{run,lib,cache,etc,log} "$W/pool" "$W/images"
mount --make-rprivate / || exit 10
cp -a /etc/libvirt/. "$P/etc/" || exit 11
rm -f "$P"/etc/qemu/networks/autostart/*
mount --bind "$P/run" /run/libvirt || exit 12
mount --bind "$P/lib" /var/lib/libvirt || exit 12
mkdir -p /var/lib/libvirt/{qemu,dnsmasq,images,network,boot}
mount --bind "$P/cache" /var/cache/libvirt || exit 12
mount --bind "$P/etc" /etc/libvirt || exit 12
mount --bind "$P/log" /var/log/libvirt || exit 12
ip link set lo up

start_daemons() {
    rm -f /run/libvirt/libvirt-sock
    [ -s "$P/virtlogd.pid" ] && kill -0 "$(cat "$P/virtlogd.pid")" 2>/dev/null ||
        virtlogd -d -p "$P/virtlogd.pid" || return 1
    libvirtd -d -p "$P/libvirtd.pid" || return 1
    for _ in $(seq 100); do
        [ -S /run/libvirt/libvirt-sock ] && virsh -q -c qemu:///system version >/dev/null 2>&1 &&
            return 0
        sleep 0.1
    done
    return 1
}
stop_daemons() {
    for f in libvirtd virtlogd; do
        [ -s "$P/$f.pid" ] && kill -9 "$(cat "$P/$f.pid")" 2>/dev/null
    done
    rm -f "$P/libvirtd.pid" "$P/virtlogd.pid"
}
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
kill -9 "$(cat "$P/libvirtd.pid")"
echo "$(now)" >"$W/killed_at"
wait "$LPID"
echo $? >"$W/provision.rc"
echo "$(now)" >"$W/ended_at"
rm -f "$P/libvirtd.pid"

start_daemons || exit 16
"$LABCTL" down -f "$W/lab.yaml" >"$W/down.out" 2>"$W/down.err"
echo $? >"$W/down.rc"
virsh -q -c qemu:///system vol-list faultpool >"$W/vols_after_down.txt" 2>&1
ls -A "$W/pool" >"$W/pool_after_down.txt" 2>&1
exit 0
