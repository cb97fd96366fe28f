#!/usr/bin/env bash
# Builds tests/consumer against rcq twice: from an install prefix with
# find_package, and with add_subdirectory. Usage: run.sh SOURCE_DIR WORK_DIR CXX
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
"$work/find-package/consumer"

echo "== conan/test_package against the installed package (the Conan consumer path)"
cmake -S "$src/conan/test_package" -B "$work/test-package" -DCMAKE_CXX_COMPILER="$cxx" \
      -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/test-package" >/dev/null
"$work/test-package/test_package"

echo "== consumer with add_subdirectory(rcq)"
cmake -S "$src/tests/consumer" -B "$work/subdirectory" -DCMAKE_CXX_COMPILER="$cxx" \
      -DRCQ_SOURCE_DIR="$src" >/dev/null
cmake --build "$work/subdirectory" >/dev/null
"$work/subdirectory/consumer"
