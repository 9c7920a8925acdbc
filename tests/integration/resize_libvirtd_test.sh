#!/bin/bash
# Run by resize_libvirtd_test.cpp inside `unshare --net --mount --fork`: a private libvirtd (its
# own /run/libvirt, /var/lib/libvirt, /etc/libvirt copy, ... in this mount namespace only; no
# network but lo) with a dir pool in the work directory and a real (empty) qcow2 base image, then
# the test binary itself again, in its inner mode: it provisions a VM through labctl's library
# against this libvirtd (QEMU runs it: SeaBIOS, no OS) and updates it in place.
# On the way out every process of this namespace (QEMU, libvirtd, virtlogd) is killed.
# Usage: resize_libvirtd_test.sh <work dir> <test binary>
set -u
W=$1
TEST_BINARY=$2
P=$W/state
mkdir -p "$W/pool" "$W/images"
# shellcheck source=tests/support/private-libvirtd.sh
. "$(dirname "$0")/../support/private-libvirtd.sh"
plv_setup "$P" || exit $?
NETNS=$(plv_netns_id)
# shellcheck disable=SC2317 # run by the trap
on_exit() {
    plv_stop "$P"
    plv_kill_netns "$NETNS" "$PPID"
}
trap on_exit EXIT
plv_start "$P" || exit 13
virsh -q -c qemu:///system pool-define-as rszpool dir --target "$W/pool" >/dev/null || exit 14
virsh -q -c qemu:///system pool-start rszpool >/dev/null || exit 14
qemu-img create -q -f qcow2 "$W/images/base.qcow2" 1G || exit 15
LABCTL_RESIZE_WORK=$W "$TEST_BINARY" "[resize-inner]"
