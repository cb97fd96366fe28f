#!/usr/bin/env bash
# Builds tests/consumer against rcq: from an install prefix with
# find_package, with plain make and pkg-config, and with add_subdirectory;
# runs the stub-provider benchmark built from the installed package and
# checks the installed helpers. Usage: run.sh SOURCE_DIR WORK_DIR CXX
set -euo pipefail
src=$1 work=$2 cxx=$3
rm -rf "$work" && mkdir -p "$work"

echo "== install rcq into a prefix"
cmake -S "$src" -B "$work/rcq-build" -DCMAKE_CXX_COMPILER="$cxx" -DRCQ_BUILD_TESTS=OFF \
      -DRCQ_BUILD_EXAMPLES=OFF -DRCQ_BUILD_BENCH=OFF -DRCQ_INSTALL=ON >/dev/null
cmake --install "$work/rcq-build" --prefix "$work/prefix" >/dev/null

echo "== consumer with find_package(rcq)"
cmake -S "$src/tests/consumer" -B "$work/find-package" -DCMAKE_CXX_COMPILER="$cxx" \
      -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/find-package" >/dev/null
"$work/find-package/consumer" | tee "$work/find-package.out"
if [[ -x $work/find-package/stub_benchmark ]]; then
    echo "== the README's stub benchmark, from the installed rcq::stub"
    "$work/find-package/stub_benchmark" --benchmark_min_time=0.01 | grep send_then_poll
else
    echo "== no Google Benchmark: stub_benchmark not built"
fi

echo "== consumer with plain make and pkg-config --cflags --libs rcq"
PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" \
    make -s -C "$src/tests/consumer" CXX="$cxx" OUT="$work/consumer-make"
"$work/consumer-make" | tee "$work/make.out"
# The same rcq either way: the flags must bring what the CMake target brings
# (RCQ_WITH_SODIUM and libsodium when the package was built with them).
if ! diff -u "$work/find-package.out" "$work/make.out"; then
    echo "the pkg-config consumer differs from the find_package one (see above)" >&2
    exit 1
fi

echo "== installed files: LICENSE, rcq-launch-env"
test -s "$work/prefix/share/doc/rcq/LICENSE"
usage=$("$work/prefix/bin/rcq-launch-env" -h 2>&1 || true) # -h: usage, exit status 2
grep -q '^usage: .*rcq-launch-env' <<<"$usage"
echo "ok"

echo "== conan/test_package against the installed package (the Conan consumer path)"
cmake -S "$src/conan/test_package" -B "$work/test-package" -DCMAKE_CXX_COMPILER="$cxx" \
      -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/test-package" >/dev/null
"$work/test-package/test_package"

echo "== consumer with add_subdirectory(rcq)"
cmake -S "$src/tests/consumer" -B "$work/subdirectory" -DCMAKE_CXX_COMPILER="$cxx" \
      -DRCQ_SOURCE_DIR="$src" >/dev/null
cmake --build "$work/subdirectory" >/dev/null
"$work/subdirectory/consumer" | tee "$work/subdirectory.out"
diff -u "$work/find-package.out" "$work/subdirectory.out"
