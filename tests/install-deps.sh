#!/usr/bin/env bash
# Installs, through apt, what building rcq and its tests needs and is missing.
# The Soft-RoCE VM's own needs (qemu, a kernel, busybox, ...) are installed by
# tests/softroce/run when it first runs.
set -euo pipefail

packages=(cmake make g++ pkg-config libibverbs-dev librdmacm-dev ibverbs-providers rdma-core
          ibverbs-utils rdmacm-utils libboost-dev googletest libgtest-dev libgmock-dev
          libbenchmark-dev valgrind clang-tidy doxygen)
# Handshake authentication, fuzzing (libFuzzer) and the sanitizer build.
packages+=(libsodium-dev clang libclang-rt-14-dev)

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
