#!/usr/bin/env bash
# Installs, through apt, what building rcq and its tests needs and is missing.
# Boost 1.81 (libboost1.81-dev) rather than Debian's default 1.74
# (libboost-dev): rcq/async needs Asio's per-operation cancellation slots
# (1.77) and asio::deferred (1.80). The two -dev packages conflict, so apt
# replaces 1.74's headers when they are there.
# The Soft-RoCE VM's own needs (qemu, a kernel, busybox, ...) are installed by
# tests/softroce/run when it first runs.
set -euo pipefail

packages=(cmake make g++ pkg-config libibverbs-dev librdmacm-dev ibverbs-providers rdma-core
          ibverbs-utils rdmacm-utils libboost1.81-dev googletest libgtest-dev libgmock-dev
          libbenchmark-dev valgrind clang-tidy doxygen)
# Handshake authentication, fuzzing (libFuzzer) and the sanitizer build.
packages+=(libsodium-dev clang libclang-rt-14-dev)
# The MPI handshake and its mesh example (Open MPI).
packages+=(libopenmpi-dev openmpi-bin)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
