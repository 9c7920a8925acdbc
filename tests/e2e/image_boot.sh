#!/usr/bin/env bash
# e2e (opt-in, LABCTL_E2E=1): `labctl image build`, then boot the image with plain QEMU (TCG,
# direct kernel boot, a qcow2 overlay so the cached image is never written, a NoCloud seed like
# the one labctl provision writes, SLIRP with restrict=on) and check from the host, over
# 127.0.0.1 only: SSH key login with a pinned host key, `cloud-init status --wait` = done,
# `docker info`, systemd-timesyncd inactive, the static address on lab0. Prints figures.
#
# The build contacts the Debian mirror of the host's apt sources; the guest reaches nothing
# (restrict=on). Needs root, qemu-system-x86, genisoimage, openssh-client, jq.
#
# usage: LABCTL_E2E=1 tests/e2e/image_boot.sh [--cache-dir DIR] [--keep]
#   LABCTL=path/to/labctl (default: build/dev/labctl)   SMP=2 MEM=2048 BOOT_TIMEOUT=900
set -euo pipefail

if [ "${LABCTL_E2E:-}" != 1 ]; then
    echo "image_boot: skipped (set LABCTL_E2E=1: builds an image from the Debian mirror and boots it)"
    exit 77
fi
here=$(cd "$(dirname "$0")/../.." && pwd)
labctl=${LABCTL:-$here/build/dev/labctl}
cache_args=()
keep=0
while [ $# -gt 0 ]; do
    case "$1" in
    --cache-dir) cache_args=(--cache-dir "$2"); shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "image_boot: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
for tool in qemu-system-x86_64 qemu-img genisoimage ssh ssh-keygen jq; do
    command -v "$tool" >/dev/null || { echo "image_boot: $tool is missing (scripts/install-deps)" >&2; exit 77; }
done

work=$(mktemp -d /tmp/labctl-e2e-image.XXXXXX)
qemu_pid=
cleanup() {
    if [ -n "$qemu_pid" ]; then kill "$qemu_pid" 2>/dev/null || true; wait "$qemu_pid" 2>/dev/null || true; fi
    if [ "$keep" -eq 1 ]; then echo "image_boot: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

t0=$(date +%s.%N)
"$labctl" --output json image build "${cache_args[@]}" >"$work/image.json"
t1=$(date +%s.%N)
disk=$(jq -r .disk "$work/image.json")
kernel=$(jq -r .kernel "$work/image.json")
initrd=$(jq -r .initrd "$work/image.json")
cmdline=$(jq -r .cmdline "$work/image.json")
echo "image_boot: image $(jq -r '.size_bytes' "$work/image.json") bytes, cached=$(jq -r .cached "$work/image.json"), $(echo "$t1 - $t0" | bc) s"

# The overlay takes every write; the cached image stays byte-identical.
before=$(sha256sum "$disk" | cut -d' ' -f1)
qemu-img create -q -f qcow2 -F qcow2 -b "$disk" "$work/overlay.qcow2"

# Keys: the login key, and a host key given to the guest through the seed and pinned here.
ssh-keygen -q -t ed25519 -N '' -C labctl-e2e -f "$work/id_ed25519"
ssh-keygen -q -t ed25519 -N '' -C host -f "$work/host_ed25519"
mac=52:54:00:12:34:56
mkdir "$work/seed"
{
    echo "#cloud-config"
    echo "hostname: e2e-vm"
    echo "fqdn: e2e-vm.lab.internal"
    echo "disable_root: true"
    echo "ssh_pwauth: false"
    echo "ssh_deletekeys: true"
    echo "users:"
    echo "  - name: lab"
    echo "    lock_passwd: true"
    echo "    shell: /bin/bash"
    echo '    sudo: "ALL=(ALL) NOPASSWD:ALL"'
    echo "    ssh_authorized_keys:"
    echo "      - $(cat "$work/id_ed25519.pub")"
    echo "ssh_keys:"
    echo "  ed25519_private: |"
    sed 's/^/    /' "$work/host_ed25519"
    echo "  ed25519_public: $(cat "$work/host_ed25519.pub")"
    echo "runcmd:"
    echo "  - [systemctl, enable, --now, qemu-guest-agent]"
} >"$work/seed/user-data"
printf 'instance-id: e2e-%s\nlocal-hostname: e2e-vm\n' "$(date +%s)" >"$work/seed/meta-data"
cat >"$work/seed/network-config" <<NET
version: 2
ethernets:
  lab0:
    match:
      macaddress: "$mac"
    set-name: lab0
    dhcp4: false
    addresses:
      - 10.0.2.15/24
    gateway4: 10.0.2.2
NET
genisoimage -quiet -V cidata -r -J -o "$work/seed.iso" "$work/seed/user-data" "$work/seed/meta-data" \
    "$work/seed/network-config"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "[127.0.0.1]:$port $(cut -d' ' -f1-2 "$work/host_ed25519.pub")" >"$work/known_hosts"

t2=$(date +%s.%N)
qemu-system-x86_64 -machine q35,accel=tcg -cpu max -smp "${SMP:-2}" -m "${MEM:-2048}" \
    -nodefaults -display none -serial "file:$work/serial.log" \
    -kernel "$kernel" -initrd "$initrd" -append "$cmdline" \
    -drive "file=$work/overlay.qcow2,if=virtio,format=qcow2" \
    -drive "file=$work/seed.iso,if=virtio,format=raw,readonly=on" \
    -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$port-:22" \
    -device "virtio-net-pci,netdev=n0,mac=$mac" \
    -device virtio-serial -chardev "socket,id=qga0,path=$work/qga.sock,server=on,wait=off" \
    -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0 \
    -device virtio-rng-pci &
qemu_pid=$!

sshv() {
    ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$work/known_hosts" \
        -o ConnectTimeout=10 -i "$work/id_ed25519" -p "$port" lab@127.0.0.1 "$@"
}
deadline=$(($(date +%s) + ${BOOT_TIMEOUT:-900}))
until sshv true 2>/dev/null; do
    kill -0 "$qemu_pid" 2>/dev/null || { echo "image_boot: qemu exited" >&2; tail -30 "$work/serial.log" >&2; exit 1; }
    [ "$(date +%s)" -lt "$deadline" ] || { echo "image_boot: no SSH" >&2; tail -30 "$work/serial.log" >&2; exit 1; }
    sleep 2
done
t3=$(date +%s.%N)
echo "image_boot: SSH (key login, pinned host key) $(echo "$t3 - $t2" | bc) s after qemu started"

fail=0
status=$(sshv cloud-init status --wait --long 2>&1 || true)
t4=$(date +%s.%N)
echo "$status" | sed 's/^/  cloud-init: /'
echo "$status" | grep -q '^status: done' || { echo "image_boot: FAIL cloud-init not done" >&2; fail=1; }
# result.json lists every module error of the run (cloud-init 22.4 has no errors in --long).
result=$(sshv cat /run/cloud-init/result.json)
echo "$result" | jq -e '.v1.errors == []' >/dev/null ||
    { echo "image_boot: FAIL cloud-init errors: $(echo "$result" | jq -c .v1.errors)" >&2; fail=1; }
echo "image_boot: cloud-init result errors: $(echo "$result" | jq -c .v1.errors)"
# ssh hands the remote shell one string: quote for it.
warnings=$(sshv "sudo grep -c -E 'WARNING|Traceback' /var/log/cloud-init.log" || true)
echo "image_boot: cloud-init.log has ${warnings:-0} WARNING/Traceback lines"
echo "image_boot: cloud-init done $(echo "$t4 - $t2" | bc) s after qemu started"
sshv "sudo docker info --format 'docker {{.ServerVersion}} storage={{.Driver}} cgroup={{.CgroupVersion}}'" ||
    { echo "image_boot: FAIL docker info" >&2; fail=1; }
timesync=$(sshv systemctl is-active systemd-timesyncd || true)
echo "image_boot: systemd-timesyncd is $timesync"
[ "$timesync" != active ] || { echo "image_boot: FAIL timesyncd active" >&2; fail=1; }
sshv ip -4 -brief address show lab0 | grep -q '10.0.2.15/24' || { echo "image_boot: FAIL no 10.0.2.15 on lab0" >&2; fail=1; }
sshv ip route show default | grep -q 'via 10.0.2.2' || { echo "image_boot: FAIL no default via 10.0.2.2" >&2; fail=1; }
sshv systemctl is-active qemu-guest-agent >/dev/null || { echo "image_boot: FAIL qemu-guest-agent" >&2; fail=1; }
failed_units=$(sshv systemctl --failed --plain --no-legend || true)
[ -z "$failed_units" ] || echo "image_boot: failed units: $failed_units"
sshv "sudo journalctl -b -p err --no-pager -q" | sed 's/^/  journal err: /' || true
sshv "hostname -f; systemctl is-system-running; ip -4 -brief address show lab0; ip route; \
    df -h --output=size,used,target /; docker-compose version --short; \
    cat /etc/systemd/network/*.network; systemd-analyze; systemd-analyze blame | head -8" | sed 's/^/  guest: /' || true
sshv docker-compose version --short >/dev/null || { echo "image_boot: FAIL docker-compose" >&2; fail=1; }
after=$(sha256sum "$disk" | cut -d' ' -f1)
[ "$before" = "$after" ] || { echo "image_boot: FAIL the cached image changed" >&2; fail=1; }
sshv sudo poweroff >/dev/null 2>&1 || true
[ "$fail" -eq 0 ] && echo "image_boot: ok"
exit "$fail"
