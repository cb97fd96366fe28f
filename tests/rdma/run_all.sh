#!/usr/bin/env bash
# The `rdma` ctest: runs every RDMA test of a build on a real RDMA stack.
# On a host with an ACTIVE RDMA device they run right here; otherwise inside
# one boot of the Soft-RoCE VM (tests/softroce/run).
#   run_all.sh BUILD_DIR
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
softroce=$here/../softroce/run

if "$softroce" --host-has-device; then
    echo "rdma tests: using the host's RDMA device"
    exec bash "$here/inner.sh" "$build"
fi
echo "rdma tests: no RDMA device on the host; running them on Soft-RoCE (rxe0) in a VM"
# Both trees are shared explicitly: the VM's /tmp is its own, so a checkout or
# build under /tmp would otherwise not be seen there.
source_tree=$(cd "$here/../.." && pwd)
exec "$softroce" --share "$build" --share "$source_tree" -- bash "$here/inner.sh" "$build"
