#!/usr/bin/env bash
# The real-VM end-to-end test (issue 9): `labctl up -f examples/lab-local.yaml` from nothing on
# this machine's libvirtd + QEMU, then the proofs: key login works and password login is refused
# over the forwarded port, verify passes, a second `up` converges, `down` leaves nothing behind.
# Opt-in (LABCTL_E2E=1): it builds a Debian VM image from the distribution mirror once (cached),
# boots a VM (~3 GiB RAM) and takes 10-20 minutes under TCG. Only 127.0.0.1 is ever contacted
# from the host; the guest's user-mode network is restricted (it reaches nothing).
# usage: LABCTL_E2E=1 tests/e2e/run.sh [build-dir]      (default build/release; prints figures)
set -euo pipefail
if [ "${LABCTL_E2E:-}" != 1 ]; then
    echo "SKIPPED: the real-VM end-to-end test is opt-in: LABCTL_E2E=1 tests/e2e/run.sh"
    exit 77
fi
cd "$(dirname "$0")/../.."
root=$PWD
build=${1:-build/release}
labctl=$root/$build/labctl
lab=examples/lab-local.yaml
state=examples/.labctl
out=$root/$build/e2e
mkdir -p "$out"
[ -x "$labctl" ] || { echo "e2e: $labctl is not built (cmake --build --preset release)" >&2; exit 2; }

step() { echo; echo "== e2e: $*"; }
fail() { echo "e2e: FAILED: $*" >&2; exit 1; }
seconds() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

step "services and offline images"
scripts/start-services
scripts/build-offline-images "$build"
"$labctl" init -f "$lab" >/dev/null

step "clean slate: labctl down --purge"
"$labctl" down --purge -f "$lab" || true

step "first labctl up"
t0=$(seconds)
"$labctl" up -f "$lab" --junit "$out/verify-first.xml" 2>&1 | tee "$out/up-first.log"
rc=${PIPESTATUS[0]}
t1=$(seconds)
[ "$rc" -eq 0 ] || fail "first up exited $rc (log: $out/up-first.log)"

step "SSH over the forwarded port: key login works, passwords are refused"
# A new connection each time: the lab's ssh_config shares one (ControlMaster), which would
# answer without authenticating again.
ssh() { command ssh -o ControlMaster=no -o ControlPath=none "$@"; }
ssh -F "$state/ssh_config" -o BatchMode=yes lab1 true || fail "key login"
if ssh -F "$state/ssh_config" -o BatchMode=yes -o PubkeyAuthentication=no \
    -o PreferredAuthentications=password,keyboard-interactive lab1 true 2>"$out/password.err"; then
    fail "a login without the key succeeded"
fi
grep -q "Permission denied (publickey)" "$out/password.err" ||
    fail "the server offers more than publickey: $(cat "$out/password.err")"
ssh -F "$state/ssh_config" -o BatchMode=yes lab1 'sudo passwd -S $(id -un)' | grep -q " L " ||
    fail "the user's password is not locked"

step "second labctl up (converges)"
t2=$(seconds)
"$labctl" up -f "$lab" --junit "$out/verify-second.xml" 2>&1 | tee "$out/up-second.log"
rc=${PIPESTATUS[0]}
t3=$(seconds)
[ "$rc" -eq 0 ] || fail "second up exited $rc"
grep -q "0 files sent" "$out/up-second.log" || grep -q '"files_transferred": 0' "$out/up-second.log" ||
    echo "e2e: note: the second deploy sent files (see $out/up-second.log)"

step "labctl down --purge leaves nothing"
"$labctl" down --purge -f "$lab" 2>&1 | tee "$out/down.log"
project=$(awk '/^project:/ {print $2; exit}' "$lab")
virsh_c() { virsh -c qemu:///system "$@"; }
left=$(virsh_c list --all --name | grep -c "^$project-" || true)
vols=$(virsh_c vol-list default 2>/dev/null | grep -cE " ($project-|labctl-bookworm-)" || true)
nets=$(virsh_c net-list --all --name | grep -c "^$project" || true)
[ "$left" -eq 0 ] || fail "$left domains left"
[ "$vols" -eq 0 ] || fail "$vols volumes left"
[ "$nets" -eq 0 ] || fail "$nets networks left"
[ ! -s "$state/known_hosts" ] || ! grep -q '2222' "$state/known_hosts" || fail "host keys left"

step "figures"
echo "first up:  $(elapsed "$t0" "$t1") s"
echo "second up: $(elapsed "$t2" "$t3") s"
echo "stage timings, first up:";  sed -n '/^STAGE/,/^total/p' "$out/up-first.log"
echo "stage timings, second up:"; sed -n '/^STAGE/,/^total/p' "$out/up-second.log"
echo "PASSED"
