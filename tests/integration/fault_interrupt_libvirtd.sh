#!/bin/bash
# Run by fault_interrupt_libvirt_test.cpp inside `unshare --net --mount --fork`: a private
# libvirtd (tests/support/private-libvirtd.sh: its own /run/libvirt, /var/lib/libvirt, ...
# bind-mounted in this mount namespace only; nothing reachable but lo), a dir pool in the work
# directory, and labctl run as a terminal's foreground job (`set -m`: a process group of its own)
# that gets Ctrl-C (SIGINT to that group) in the middle of one stage:
#   upload  `labctl provision --parallel 4` of 4 VMs while the 4 GiB (sparse, raw) base image
#           streams into the pool
#   wait    `labctl provision --parallel 4` while 4 real QEMU (TCG) guests run and labctl waits
#           for SSH on their forwarded ports (the guests have no OS: they never answer)
#   down    `labctl down` while it destroys 4 domains whose QEMU processes are stopped (SIGSTOP),
#           which libvirt ends with SIGTERM, 10 s, then SIGKILL: a slow removal; then a second
#           `labctl down` finishes the job
# It records, in files under $1 for the C++ test to assert: exit code, when the signal went and
# when labctl ended, what ran below labctl at the signal and what of it is still alive after,
# what is left in its process group, QEMU processes of this namespace, the domains, volumes and
# pool files, the upload markers, and labctl's $TMPDIR. Everything of the namespace is killed on
# the way out.
# Usage: fault_interrupt_libvirtd.sh <work dir with lab.yaml> <labctl binary> upload|wait|down
set -u
W=$1
LABCTL=$2
MODE=$3
P=$W/state
O=$W/out
mkdir -p "$W/pool" "$W/images" "$W/tmp" "$O"
# shellcheck source=tests/support/private-libvirtd.sh
. "$(dirname "$0")/../support/private-libvirtd.sh"
plv_setup "$P" || exit $?
NETNS=$(plv_netns_id)
# shellcheck disable=SC2317 # run by the EXIT trap
finish() {
    plv_kill_netns "$NETNS" "$$" "$PPID"
    plv_stop "$P"
}
trap finish EXIT
plv_start "$P" || exit 13
virsh_c() { virsh -q -c qemu:///system "$@"; }
virsh_c pool-define-as intrpool dir --target "$W/pool" >/dev/null || exit 14
virsh_c pool-start intrpool >/dev/null || exit 14
if [ "$MODE" = upload ]; then truncate -s 4G "$W/images/base.raw"; else truncate -s 64M "$W/images/base.raw"; fi

export TMPDIR=$W/tmp
cd "$W" || exit 15
now() { date +%s.%N; }
# pid and command line of every descendant of $1
descendants() {
    local c
    for c in $(pgrep -P "$1"); do
        echo "$c $(tr '\0' ' ' <"/proc/$c/cmdline" 2>/dev/null)"
        descendants "$c"
    done
}
# QEMU processes of this namespace (no other namespace can match)
qemus() {
    local pid
    for pid in $(pgrep -f qemu-system); do
        [ "$(readlink "/proc/$pid/ns/net" 2>/dev/null)" = "$NETNS" ] && echo "$pid"
    done
}
# Waits up to $1 tenths of a second for the command after it to succeed while labctl runs.
until_ready() {
    local n=$1 _
    shift
    for _ in $(seq "$n"); do
        kill -0 "$LPID" 2>/dev/null || return 1
        "$@" && return 0
        sleep 0.1
    done
    return 1
}
# labctl "$@" in a process group of its own, as a shell runs a foreground job.
start_labctl() {
    set -m
    "$LABCTL" "$@" >"$O/run.out" 2>"$O/run.err" &
    LPID=$!
    set +m
}
# Ctrl-C to labctl's group; waits for it; records what the C++ side asserts.
interrupt_and_record() {
    descendants "$LPID" >"$O/at_signal.txt"
    now >"$O/signalled_at"
    kill -INT -- "-$LPID"
    wait "$LPID"
    echo $? >"$O/rc"
    now >"$O/ended_at"
    pgrep -g "$LPID" >"$O/left_in_group.txt"
    sleep 1
    : >"$O/left_children.txt"
    while read -r pid cmd; do
        [ -n "$pid" ] && [ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" = "$cmd" ] &&
            echo "$pid $cmd" >>"$O/left_children.txt"
    done <"$O/at_signal.txt"
    record after
}
record() {
    qemus >"$O/qemus_$1.txt"
    virsh_c list --all --name | sed '/^$/d' >"$O/domains_$1.txt"
    virsh_c vol-list intrpool | awk 'NF {print $1}' >"$O/vols_$1.txt"
    ls -A "$W/pool" >"$O/pool_$1.txt"
    ls -A "$W/.labctl/uploads" >"$O/uploads_$1.txt" 2>/dev/null
    find "$W/tmp" -mindepth 1 >"$O/tmp_$1.txt"
}

case "$MODE" in
upload)
    start_labctl provision --parallel 4 -f "$W/lab.yaml"
    # The stream runs once the volume's file is in the pool and the marker says "unfinished".
    until_ready 600 test -e "$W/pool/base.raw" -a -e "$W/.labctl/uploads/base.raw.unfinished" ||
        exit 20
    sleep 0.5
    ls -A "$W/.labctl/uploads" >"$O/uploads_at_signal.txt"
    du -k "$W/pool/base.raw" | awk '{print $1}' >"$O/pool_kib_at_signal.txt"
    interrupt_and_record
    ;;
wait)
    start_labctl provision --parallel 4 --ssh-timeout 900 -f "$W/lab.yaml"
    # shellcheck disable=SC2317 # called through until_ready
    four_waiting() {
        [ "$(qemus | wc -l)" -ge 4 ] && [ "$(grep -c 'waiting for SSH at' "$O/run.err")" -ge 4 ]
    }
    until_ready 1200 four_waiting || exit 21
    sleep 2
    record at_signal
    interrupt_and_record
    ;;
down)
    # 4 running domains made by labctl (the waits time out; --keep-on-failure keeps them).
    "$LABCTL" provision --parallel 4 --ssh-timeout 1 --keep-on-failure -f "$W/lab.yaml" \
        >"$O/prep.out" 2>"$O/prep.err"
    echo $? >"$O/prep.rc"
    [ "$(qemus | wc -l)" -eq 4 ] || exit 22
    for q in $(qemus); do kill -STOP "$q"; done
    record at_signal
    start_labctl down -f "$W/lab.yaml"
    sleep 3 # connected and inside its first virDomainDestroy, which takes 10 s here
    interrupt_and_record
    for q in $(qemus); do kill -CONT "$q"; done # only so that the second down is quick
    "$LABCTL" down -f "$W/lab.yaml" >"$O/down2.out" 2>"$O/down2.err"
    echo $? >"$O/down2.rc"
    record after_down2
    ;;
*)
    exit 2
    ;;
esac
exit 0
