#!/usr/bin/env bash
# The real-VM converge benchmark (issue 16): `labctl up` on the original lab's NAT network under
# QEMU here (tests/e2e/nat.sh: its own network namespace and private libvirtd), then a second `up`
# with nothing to do, an `up` after one changed file in the stack, and an `up` after a container
# was stopped on the guest. Prints each run's wall time and stage table, and the converge checks'
# own times. Opt-in like the e2e test (root, about 15 min under TCG):
#   LABCTL_E2E=1 tests/bench/converge/run.sh [build-dir]     (default build/release)
set -euo pipefail
cd "$(dirname "$0")/../../.."
build=${1:-build/release}
if [ "${LABCTL_E2E:-}" != 1 ]; then
    echo "SKIPPED: the converge benchmark boots a VM: LABCTL_E2E=1 tests/bench/converge/run.sh"
    exit 77
fi
tests/e2e/nat.sh "$build" >"$build/converge-bench.log" 2>&1 || {
    echo "the e2e run failed: $build/converge-bench.log" >&2
    tail -30 "$build/converge-bench.log" >&2
    exit 1
}
out=$build/e2e-nat
echo "== converge benchmark ($(date -u +%FT%TZ), $(nproc) CPUs, guest under $(grep -o 'using [a-z]* ([^)]*)' "$out/up-first.log" | head -n1 || echo '?'))"
cat "$out/figures.txt" | sed -n '/^first up/,/^verify, first up/p' | sed '$d'
echo "converge checks (one SSH round trip each):"
grep -hoE "(deploy [a-z0-9-]+: up to date.*\(checked in [^)]*\)|harden [0-9.]+: record: .*)" \
    "$out/up-second.log" "$out/up-changed.log" "$out/up-drift.log" | sed 's/^/  /'
echo "full log: $build/converge-bench.log"
