#!/bin/bash
# Run by fault_libvirtd_test.cpp inside `unshare --net --mount --fork`: a private libvirtd (its
# own /run/libvirt, /var/lib/libvirt, /var/cache/libvirt, /etc/libvirt copy and /var/log/libvirt,
# bind-mounted in this mount namespace only; no network reachable but lo) that this script may
# kill. It runs `labctl provision` on the lab in $1 and injects one fault ($3):
#   kill    4 GiB sparse raw base image streaming: libvirtd SIGKILLed (the socket closes);
#   stop    the same, libvirtd SIGSTOPped (nothing answers: only keepalive can end the wait);
#   shrink  the same, the image file truncated (to 0 bytes) by this script while it streams;
#   eio     the image is on the test's FUSE file system (mounted over $1/images before this
#           script runs), whose reads fail with EIO part-way: nothing to do here;
#   hook    the qemu hook (/etc/libvirt/hooks/qemu of the private copy, in every mode) fails the
#           "prepare" of every domain start, so virDomainCreate fails for real; labctl makes the
#           pool and the NAT network itself.
# Records how labctl ended; for kill/stop it then restarts libvirtd and runs `labctl down`; for
# the others it lists what libvirt still has and which processes live in this network namespace.
# Results go to files in $1 for the C++ test to assert.
# Usage: fault_libvirtd_test.sh <work dir> <labctl binary> kill|stop|shrink|eio|hook
set -u
W=$1
LABCTL=$2
MODE=$3
P=$W/state
POOL=faultpool
mkdir -p "$W/pool" "$W/images"
# shellcheck source=tests/support/private-libvirtd.sh
. "$(dirname "$0")/../support/private-libvirtd.sh"
plv_setup "$P" || exit $?

# A qemu hook (libvirtd finds its hooks when it starts) refuses every domain start at "prepare",
# before QEMU runs: the fault of mode hook, and in the other modes a guard that no guest ever
# runs here, whatever labctl does.
mkdir -p "$P/etc/hooks"
cat >"$P/etc/hooks/qemu" <<EOF
#!/bin/sh
echo "\$1 \$2 \$3" >>"$W/hook.log"
if [ "\$2" = prepare ]; then
    echo "refused by the fault test's qemu hook" >&2
    exit 1
fi
exit 0
EOF
chmod 755 "$P/etc/hooks/qemu"

NETNS=$(plv_netns_id)
start_daemons() { plv_start "$P"; }
# On the way out: the daemons, then anything else left in this namespace (not unshare, our parent).
# shellcheck disable=SC2317 # run by the trap
on_exit() {
    plv_stop "$P"
    plv_kill_netns "$NETNS" "$PPID"
}
trap on_exit EXIT

start_daemons || exit 13
if [ "$MODE" != hook ]; then
    virsh -q -c qemu:///system pool-define-as $POOL dir --target "$W/pool" >/dev/null || exit 14
    virsh -q -c qemu:///system pool-start $POOL >/dev/null || exit 14
    virsh -q -c qemu:///system pool-autostart $POOL >/dev/null || exit 14
fi
case $MODE in
kill | stop | shrink) truncate -s 4G "$W/images/base.raw" ;;
hook) truncate -s 64M "$W/images/base.raw" ;;
esac

cd "$W" || exit 15
now() { date +%s.%N; }
now >"$W/started_at"
"$LABCTL" provision -f "$W/lab.yaml" >"$W/provision.out" 2>"$W/provision.err" &
LPID=$!
if [ "$MODE" = kill ] || [ "$MODE" = stop ] || [ "$MODE" = shrink ]; then
    # The upload runs once the base volume's file exists in the pool.
    for _ in $(seq 300); do
        ls "$W"/pool/* >/dev/null 2>&1 && break
        sleep 0.05
    done
    sleep 0.5
    ls -la "$W/pool" >"$W/pool_at_kill.txt" 2>&1
    case $MODE in
    stop) kill -STOP "$(cat "$P/libvirtd.pid")" ;;
    kill) kill -9 "$(cat "$P/libvirtd.pid")" ;;
    shrink) truncate -s 0 "$W/images/base.raw" ;;
    esac
    now >"$W/killed_at"
fi
wait "$LPID"
echo $? >"$W/provision.rc"
now >"$W/ended_at"

if [ "$MODE" = kill ] || [ "$MODE" = stop ]; then
    kill -9 "$(cat "$P/libvirtd.pid")" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$(cat "$P/libvirtd.pid")" 2>/dev/null || break; sleep 0.1; done
    rm -f "$P/libvirtd.pid"
    start_daemons || exit 16
    "$LABCTL" down -f "$W/lab.yaml" >"$W/down.out" 2>"$W/down.err"
    echo $? >"$W/down.rc"
    virsh -q -c qemu:///system vol-list $POOL >"$W/vols_after_down.txt" 2>&1
    ls -A "$W/pool" >"$W/pool_after_down.txt" 2>&1
    exit 0
fi

# What the failed run left, asked of the libvirtd it ran against (still alive).
V="virsh -q -c qemu:///system"
$V list --all --name >"$W/domains_after.txt" 2>&1
$V net-list --all --name >"$W/networks_after.txt" 2>&1
$V pool-list --all --name >"$W/pools_after.txt" 2>&1
if $V pool-info $POOL >/dev/null 2>&1; then
    $V vol-list $POOL >"$W/vols_after.txt" 2>&1
else
    : >"$W/vols_after.txt"
fi
ls -A "$W/pool" >"$W/pool_after.txt" 2>&1
# Every process in this network namespace but this script, its subshells and the two daemons
# (QEMU or dnsmasq left here would be the run's).
: >"$W/procs_after.txt"
for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [ "$(readlink "$d/ns/net" 2>/dev/null)" = "$NETNS" ] || continue
    [ "$pid" = "$$" ] && continue
    [ "$pid" = "${BASHPID:-}" ] && continue
    comm=$(cat "$d/comm" 2>/dev/null) || continue
    case $comm in libvirtd | virtlogd | unshare | bash | readlink | cat | tr) continue ;; esac
    echo "$pid $comm $(tr '\0' ' ' <"$d/cmdline" 2>/dev/null)" >>"$W/procs_after.txt"
done
exit 0
