#!/usr/bin/env bash
# Builds the unit tests, the rdma tests and the examples with AddressSanitizer
# and UndefinedBehaviorSanitizer in BUILD_DIR/asan, and runs them: the unit
# tests here, the rdma tests and examples on the RDMA device (inside the
# Soft-RoCE VM when the host has none). Any sanitizer report fails the run.
#   run.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
asan=$1/asan
start=$SECONDS

flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
cmake -S "$root" -B "$asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRCQ_BUILD_BENCH=OFF \
    -DCMAKE_CXX_FLAGS="$flags" >/dev/null
cmake --build "$asan" -j "$(nproc)" --target rcq_unit_tests rcq_rdma_tests \
    rdma_server rdma_client rdma_write_read custom_policies rcq_async_tests async_echo \
    hello_server hello_client
# The seed generator when it is configured (rcq built with libsodium).
if cmake --build "$asan" --target help | grep -w rcq_fuzz_seeds >/dev/null; then
    cmake --build "$asan" -j "$(nproc)" --target rcq_fuzz_seeds
fi
built=$SECONDS

# halt_on_error: the first report ends the program with a failure. These
# variables reach the VM too (tests/softroce/run passes *SAN_OPTIONS).
export ASAN_OPTIONS=halt_on_error=1:abort_on_error=0:detect_leaks=1:strict_string_checks=1
export LSAN_OPTIONS=suppressions=$(cd "$(dirname "$0")" && pwd)/lsan.supp
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
status=0
# mpi_handshake is left out: Open MPI's own allocations, which it keeps
# until exit, would be LeakSanitizer's findings, not rcq's.
(cd "$asan" && ctest -L unit -E '^(consumer|headers_compile_alone|mpi_handshake)$' -j "$(nproc)" \
    --output-on-failure --timeout 600) || status=1
unit_done=$SECONDS
bash "$root/tests/rdma/run_all.sh" "$asan" || status=1
echo "== sanitizers: build $((built - start)) s, unit tests $((unit_done - built)) s," \
     "rdma tests $((SECONDS - unit_done)) s; status $status"
exit "$status"
