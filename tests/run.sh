#!/usr/bin/env bash
# Builds rcq with every test and runs them all: unit, compile-fail, consumer
# and rdma (on the host's RDMA device, or on Soft-RoCE in a VM without one).
#   bash tests/run.sh [BUILD_DIR]      (default: build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}

bash "$root/tests/install-deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)"
cd "$build"
status=0
ctest --output-on-failure -j "$(nproc)" --timeout 1800 | tee ctest.out || status=$?

# ---- sanitizers: the unit and rdma tests again, built with ASan + UBSan in
# $build/asan (the rdma part inside the VM); see tests/sanitize/run.sh.
sanitize_start=$SECONDS
bash "$root/tests/sanitize/run.sh" "$build" >sanitize.out 2>&1 || status=1
grep -E '^== (PASS|FAIL|rdma:|sanitizers:)|tests passed' sanitize.out || tail -40 sanitize.out
echo "== sanitizers: $((SECONDS - sanitize_start)) s in all"
# ---- end of sanitizers

# What the rdma test ran on the device, part by part (ctest keeps it in its
# log), then ctest's verdict again, as the last line.
echo "== rdma test parts:"
grep -E '^== (PASS|FAIL|device|rdma:)' Testing/Temporary/LastTest.log || true
grep -E 'tests passed, [0-9]+ tests failed' ctest.out || true
exit "$status"
