# shellcheck shell=bash
# Sourced (bash) by scripts that run a private libvirtd inside `unshare --net --mount --fork`
# (tests/integration/fault_libvirtd_test.sh, tests/e2e/nat.sh). The daemon gets its own
# /run/libvirt, /var/lib/libvirt, /var/cache/libvirt, /etc/libvirt (a copy without autostart
# networks) and /var/log/libvirt, bind-mounted from a state directory in this mount namespace
# only, so the host's libvirtd, its objects and its `default` network are never seen or touched;
# in the new network namespace only lo exists (brought up here) until libvirt adds its bridges.
#
#   plv_setup STATE     mounts (returns 10: mounts not private, 11: /etc/libvirt copy, 12: a bind)
#   plv_start STATE     virtlogd (unless running) + libvirtd, pid files in STATE; waits <= 10 s
#   plv_stop STATE      SIGKILLs both (they are this namespace's own)
#   plv_netns_id        this network namespace's id (net:[inode]), for plv_kill_netns
#   plv_kill_netns ID [EXCEPT_PID...]  SIGKILLs every process in network namespace ID (QEMU,
#                       dnsmasq, libvirtd, ...) but the listed pids; only namespaces this test
#                       created are passed, so nothing else can match

plv_setup() {
    local P=$1
    mkdir -p "$P"/{run,lib,cache,etc,log} || return 11
    mount --make-rprivate / || return 10
    cp -a /etc/libvirt/. "$P/etc/" || return 11
    rm -f "$P"/etc/qemu/networks/autostart/*
    mount --bind "$P/run" /run/libvirt || return 12
    mount --bind "$P/lib" /var/lib/libvirt || return 12
    mkdir -p /var/lib/libvirt/{qemu,dnsmasq,images,network,boot}
    mount --bind "$P/cache" /var/cache/libvirt || return 12
    mount --bind "$P/etc" /etc/libvirt || return 12
    mount --bind "$P/log" /var/log/libvirt || return 12
    mkdir -p /var/log/libvirt/qemu
    ip link set lo up
}

plv_start() {
    local P=$1
    rm -f /run/libvirt/libvirt-sock
    { [ -s "$P/virtlogd.pid" ] && kill -0 "$(cat "$P/virtlogd.pid")" 2>/dev/null; } ||
        virtlogd -d -p "$P/virtlogd.pid" || return 1
    libvirtd -d -p "$P/libvirtd.pid" || return 1
    local _
    for _ in $(seq 100); do
        [ -S /run/libvirt/libvirt-sock ] && virsh -q -c qemu:///system version >/dev/null 2>&1 &&
            return 0
        sleep 0.1
    done
    return 1
}

plv_stop() {
    local P=$1 f
    for f in libvirtd virtlogd; do
        [ -s "$P/$f.pid" ] && kill -9 "$(cat "$P/$f.pid")" 2>/dev/null
    done
    rm -f "$P/libvirtd.pid" "$P/virtlogd.pid"
}

plv_netns_id() { readlink /proc/self/ns/net; }

plv_kill_netns() {
    local id=$1 pid ns _
    shift
    [ -n "$id" ] || return 0
    for _ in 1 2 3; do
        local found=0
        for pid in /proc/[0-9]*; do
            pid=${pid#/proc/}
            [ "$pid" = "$$" ] && continue
            [ "$pid" = "${BASHPID:-}" ] && continue
            case " $* " in *" $pid "*) continue ;; esac
            ns=$(readlink "/proc/$pid/ns/net" 2>/dev/null) || continue
            [ "$ns" = "$id" ] || continue
            kill -9 "$pid" 2>/dev/null && found=1
        done
        [ "$found" = 0 ] && return 0
        sleep 0.5
    done
}
