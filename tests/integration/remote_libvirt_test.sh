#!/usr/bin/env bash
# Run by remote_libvirt_test.cpp inside `unshare --net --mount --fork`: this namespace (A) is "the
# machine labctl runs on", and the lab's first libvirt host ("local": a private libvirtd of its
# own). It starts a second one (B), "the remote hypervisor" (host "kvm"): its own private
# libvirtd (tests/support/private-libvirtd.sh) and an sshd on 10.79.0.2:22, joined to A by a veth
# pair (A is 10.79.0.1). Nothing else is reachable from either: no uplink, and both namespaces end
# with this script. labctl runs in A against `qemu+ssh://root@10.79.0.2/system`: libvirt's own
# ssh transport (the URI's command= pins B's host key), and labctl's jump through the same sshd.
# B's NAT network (10.78.0.0/24) exists only in B: A has no route to it, so a guest address is
# reachable from A only through the jump. The VMs' disks are blank, so no guest boots: a first
# provision times out and rolls back on both hosts; a second keeps what it made; then a "guest
# stand-in" sshd starts at each VM's reserved address (vm1's in B, vm0's in A) with the host key
# labctl generated and pinned for that VM, and labctl hardens both (vm1 through the jump) and
# logs in to them. Results go to files in $1 for the C++ test to assert.
# usage: remote_libvirt_test.sh <work dir> <labctl> <guest user>
#        remote_libvirt_test.sh <work dir> --host-b          (B, started by the script itself)
set -u
W=$1
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/support/private-libvirtd.sh
. "$here/../support/private-libvirtd.sh"
now() { date +%s.%N; }

# --------------------------------------------------------------------------------------------
# B: the remote hypervisor.
if [ "${2:-}" = --host-b ]; then
    echo $$ >"$W/b.pid"
    P=$W/b-state
    finish_b() {
        # QEMU, dnsmasq, libvirtd, virtlogd and both sshds: every process of B's namespace.
        plv_kill_netns "$(plv_netns_id)" "$$" "$PPID"
    }
    trap finish_b EXIT
    plv_setup "$P" || exit 20
    plv_start "$P" || exit 21
    for _ in $(seq 100); do ip link show vb >/dev/null 2>&1 && break; sleep 0.1; done
    ip addr add 10.79.0.2/24 dev vb && ip link set vb up || exit 22
    /usr/sbin/sshd -f "$W/b-sshd_config" -E "$W/b-sshd.log" || exit 23
    touch "$W/b.ready"
    guest_started=0
    while [ ! -f "$W/b.stop" ]; do
        if [ "$guest_started" = 0 ] && [ -f "$W/guest.go" ]; then
            # The stand-in answers at the VM's reserved address, on B's side only.
            ip addr add 10.78.0.10/32 dev lo
            /usr/sbin/sshd -f "$W/guest-sshd_config" -E "$W/guest-sshd.log" &&
                touch "$W/guest.ready"
            guest_started=1
        fi
        sleep 0.1
    done
    exit 0
fi

# --------------------------------------------------------------------------------------------
# A: the machine labctl runs on.
LABCTL=$2
GUSER=$3
ip link set lo up
# A is a libvirt host of the lab too ("local", qemu:///system): its own private libvirtd.
plv_setup "$W/a-state" || exit 34
plv_start "$W/a-state" || exit 35
unshare --net --mount --fork --kill-child bash "$0" "$W" --host-b 2>"$W/b.err" &
UNSHARE_PID=$!
stop_b() {
    touch "$W/b.stop"
    for _ in $(seq 100); do kill -0 "$UNSHARE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$UNSHARE_PID" 2>/dev/null
    # What A itself may have left (an ssh of labctl's): this namespace is ours alone (but for
    # this shell and the unshare that started it).
    plv_kill_netns "$(plv_netns_id)" "$$" "$PPID"
}
trap stop_b EXIT
for _ in $(seq 100); do [ -s "$W/b.pid" ] && break; sleep 0.1; done
[ -s "$W/b.pid" ] || exit 30
ip link add va type veth peer name vb || exit 31
ip link set vb netns "$(cat "$W/b.pid")" || exit 31
ip addr add 10.79.0.1/24 dev va && ip link set va up || exit 31
for _ in $(seq 200); do [ -f "$W/b.ready" ] && break; sleep 0.1; done
[ -f "$W/b.ready" ] || { cat "$W/b.err" >&2; exit 32; }
ip -o addr >"$W/a-addresses.txt"
ip route >"$W/a-routes.txt"

cd "$W" || exit 33
run() { # run NAME labctl-args...: stdout, stderr, exit status and duration into files
    local name=$1 t0
    shift
    t0=$(now)
    "$LABCTL" "$@" >"$W/$name.out" 2>"$W/$name.err"
    echo $? >"$W/$name.rc"
    awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f\n", b - a }' >"$W/$name.time"
}
# An independent view of B's libvirtd (virsh over the same pinned ssh), for "nothing left".
remote_virsh() { virsh -q -c "$(cat "$W/uri")" "$@"; }

local_virsh() { virsh -q -c qemu:///system "$@"; }
snapshot() { # what the lab left on both hosts
    {
        echo "## remote domains"; remote_virsh list --all --name
        echo "## remote volumes"; remote_virsh vol-list labremote-pool 2>/dev/null
        echo "## remote networks"; remote_virsh net-list --all --name
        echo "## local domains"; local_virsh list --all --name
        echo "## local volumes"; local_virsh vol-list labremote-pool 2>/dev/null
        echo "## local networks"; local_virsh net-list --all --name
    } >"$W/$1.txt" 2>&1
}

run doctor doctor -f lab.yaml --output json
run plan plan -f lab.yaml --detailed-exitcode
# Without --keep-on-failure: the guests never answer, and everything on both hosts goes again.
run provision-rollback provision -f lab.yaml --ip-timeout 5 --ssh-timeout 5
snapshot after-rollback
run provision provision -f lab.yaml --keep-on-failure --ip-timeout 5 --ssh-timeout 5
remote_virsh vol-list labremote-pool --details >"$W/vols-after-provision.txt" 2>&1
remote_virsh list --all --name >"$W/domains-after-provision.txt" 2>&1
remote_virsh net-dumpxml labremote-net >"$W/net-after-provision.xml" 2>&1
local_virsh list --all --name >"$W/local-domains-after-provision.txt" 2>&1
run status status -f lab.yaml --output json

touch "$W/guest.go"
# The local VM's stand-in: in A, at its reserved address.
ip addr add 10.78.0.20/32 dev lo
/usr/sbin/sshd -f "$W/guest0-sshd_config" -E "$W/guest0-sshd.log" || exit 36
for _ in $(seq 100); do [ -f "$W/guest.ready" ] && break; sleep 0.1; done
# Direct, without the jump: A has no route to the guest's network.
timeout 5 bash -c 'exec 3<>/dev/tcp/10.78.0.10/22' 2>"$W/direct.err"
echo $? >"$W/direct.rc"
run harden harden -f lab.yaml --wait 30s
# --host naming vm1's own address is vm1: reached through its host's jump like the VM.
run harden-host harden -f lab.yaml --wait 30s --host "$GUSER@10.78.0.10:22"
run ssh ssh -f lab.yaml vm1 -- echo hello-through-the-hypervisor
run ssh0 ssh -f lab.yaml vm0 -- echo hello-from-the-local-host

run down down -f lab.yaml --purge
snapshot after-down
remote_virsh list --all --name >"$W/domains-after-down.txt" 2>&1
remote_virsh vol-list labremote-pool >"$W/vols-after-down.txt" 2>&1
remote_virsh net-list --all --name >"$W/nets-after-down.txt" 2>&1
exit 0
