#!/usr/bin/env bash
# The `mesh_two_vms` ctest: one MPI job across two Soft-RoCE VMs joined by a
# virtual wire (tests/softroce/run --two), running examples/rdma_mesh with 4
# ranks, 2 in each VM, so that the RC connections between the VMs carry their
# RoCE packets over the wire.
#   mesh_two_vms.sh BUILD_DIR
#
# There is no ssh between the VMs. mpirun (in the server's VM) starts its
# daemon on the other VM through its rsh launcher, whose agent
# (--mca plm_rsh_agent) is this script in --relay mode: it writes the daemon's
# command line into a spool folder on the build share, which both VMs mount
# (uncached 9p), and waits for its exit status; this script in --client mode
# runs in the client's VM, picks the command up and runs it. Everything else
# (the daemon connecting back, the ranks' MPI traffic) is Open MPI's own TCP
# over the wire (oob and btl tcp, limited to the wire's subnet); Open MPI is
# kept off the RDMA device as in inner.sh.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# Polls for FILE until it exists or SECONDS_LEFT run out.
wait_for() { # FILE SECONDS_LEFT
    local end=$((SECONDS + $2))
    until [ -e "$1" ]; do
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 0.2
    done
}

case "${1:-}" in
--relay) # SPOOL HOST COMMAND... (called by mpirun)
    spool=$2 host=$3
    shift 3
    printf '%s ' "$@" >"$spool/command.tmp"
    mv "$spool/command.tmp" "$spool/command"
    echo "relay: starting the daemon on $host" >&2
    wait_for "$spool/status" 180 || { echo "relay: no status from $host" >&2; exit 1; }
    exit "$(cat "$spool/status")"
    ;;
--client) # BUILD SPOOL
    spool=$3
    [ "$(hostname)" = "(none)" ] && hostname rcq-client
    if ! wait_for "$spool/command" 120; then
        echo "client: mpirun never asked for a daemon"
        exit 1
    fi
    mv "$spool/command" "$spool/command.run"
    bash -c "$(cat "$spool/command.run")" >"$spool/daemon.out" 2>&1
    echo $? >"$spool/status.tmp"
    mv "$spool/status.tmp" "$spool/status"
    sed 's/^/daemon| /' "$spool/daemon.out"
    exit 0
    ;;
--server) # BUILD SPOOL
    build=$2 spool=$3
    [ "$(hostname)" = "(none)" ] && hostname rcq-server
    timeout 200 mpirun -np 4 --host "$RCQ_IP:2,$RCQ_PEER_IP:2" --map-by node \
        --allow-run-as-root --oversubscribe --timeout 180 \
        --mca plm_rsh_agent "bash $here/mesh_two_vms.sh --relay $spool" \
        --mca pml ob1 --mca btl self,vader,tcp --mca osc pt2pt \
        --mca oob_tcp_if_include "${RCQ_IP%.*}.0/24" --mca btl_tcp_if_include "${RCQ_IP%.*}.0/24" \
        "$build/examples/rdma_mesh" -d "$RCQ_DEVICE" -g "$RCQ_GID_INDEX" -t 90 >"$spool/mesh.out" 2>&1
    status=$?
    cat "$spool/mesh.out"
    if [ "$status" -eq 0 ]; then
        for rank in 0 1 2 3; do
            grep -q "^rank $rank: 3 of 3 messages received and checked\$" "$spool/mesh.out" ||
                { echo "rank $rank did not report its 3 checked messages"; status=1; }
        done
    fi
    echo "== mesh across two VMs: $([ "$status" -eq 0 ] && echo PASS || echo "FAIL (exit $status)")"
    exit "$status"
    ;;
esac

# The ctest itself, on the host.
build=$(cd "$1" && pwd)
if [ ! -x "$build/examples/rdma_mesh" ]; then
    echo "rdma tests skipped: examples/rdma_mesh was not built (MPI not found)"
    exit 0
fi
if "$here/../softroce/run" --host-has-device; then
    echo "rdma tests skipped: the host has an RDMA device; this test joins two Soft-RoCE VMs"
    exit 0
fi
spool=$(mktemp -d "$build/mesh-two-vms.XXXXXX")
trap 'rm -rf "$spool"' EXIT
source_tree=$(cd "$here/../.." && pwd)
"$here/../softroce/run" --two --timeout 400 --share "$build" --share "$source_tree" \
    --server "bash $here/mesh_two_vms.sh --server $build $spool" \
    --client "bash $here/mesh_two_vms.sh --client $build $spool"
