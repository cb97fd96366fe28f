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
ctest --output-on-failure -j "$(nproc)" --timeout 1800
