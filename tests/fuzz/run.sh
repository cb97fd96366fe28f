#!/usr/bin/env bash
# Builds one libFuzzer harness of tests/fuzz with clang (with ASan and UBSan)
# and runs it for a bounded time on a copy of its committed seed corpus.
#   run.sh BUILD_DIR NAME [SECONDS]
# SECONDS defaults to $RCQ_FUZZ_SECONDS, else 14. To fuzz longer, run e.g.
#   RCQ_FUZZ_SECONDS=3600 bash tests/fuzz/run.sh build decode
# A finding (crash, sanitizer report, leak, timeout) fails the run and leaves
# the input in BUILD_DIR/fuzz/NAME/crash-* (or leak-*, timeout-*).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
name=$2
seconds=${3:-${RCQ_FUZZ_SECONDS:-14}}
cxx=${RCQ_FUZZ_CXX:-clang++}
work=$1/fuzz/$name
mkdir -p "$work/corpus"

command -v "$cxx" >/dev/null ||
    { echo "fuzz: $cxx not found; install clang and libclang-rt-14-dev (tests/install-deps.sh)"; exit 1; }
# A harness may ask for more compiler and linker flags on a line of its own:
#   // fuzz-flags: -DRCQ_WITH_SODIUM=1 -lsodium
extra=$(sed -n 's|^// fuzz-flags: *||p' "$here/$name.cpp")
# shellcheck disable=SC2086 # the flags are words
"$cxx" -std=c++20 -O1 -g -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -I"$root/include" "$here/$name.cpp" -o "$work/$name" $extra

# The committed seeds are copied, so that what the run adds stays in the build.
cp "$here/corpus/$name"/* "$work/corpus/"
cd "$work"
status=0
"./$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
    corpus >log 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
    tail -60 log
    echo "fuzz $name: FINDING (exit $status); the input is in $work"
    exit 1
fi
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' log)
# What the seeds alone reach (coverage and features once they are loaded),
# which shows whether they get past the headers.
seeded=$(sed -n 's/.*INITED \(cov: [0-9]* ft: [0-9]*\).*/\1/p' log | head -1)
echo "fuzz $name: seeds reach $seeded; $runs executions in $seconds s, 0 findings"
