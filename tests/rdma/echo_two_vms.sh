#!/usr/bin/env bash
# The `echo_two_vms` ctest: examples/rdma_echo_server in one Soft-RoCE VM
# with LOCAL clients of its own, and REMOTE clients in a second VM joined to
# it by a virtual wire (tests/softroce/run --two), so that the RC traffic of
# the remote clients crosses the wire as RoCE packets while the local ones
# stay on the server's rxe0. Every client sends MESSAGES messages of 1 B to
# 4 KiB and checks every echoed byte. Passes when every client, in both VMs,
# says so, and the server, which stops after LOCAL + REMOTE finished clients,
# reports exactly that many finished, none lost, REMOTE of them from the
# other VM's address.
#   echo_two_vms.sh BUILD_DIR [LOCAL] [REMOTE] [MESSAGES]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
port=18700 # fixed: the client VM must know it; each VM has its own network

# clients COUNT HOST MESSAGES LOGS: starts COUNT echo clients and waits for
# them; prints how many checked every byte and the failures, returns 1 if
# any failed.
clients() {
    local count=$1 host=$2 messages=$3 logs=$4 i ok=0 status=0 pids=()
    for i in $(seq "$count"); do
        # -t 90: the client retries its connection until the server listens
        # (the VMs boot side by side) and bounds every wait by it.
        timeout 150 "$build/examples/rdma_echo_client" "$host" -p "$port" -t 90 --poll=blocking \
            -n "$messages" >"$logs/client$i" 2>&1 &
        pids+=($!)
    done
    for i in $(seq "$count"); do
        if wait "${pids[$((i - 1))]}" && grep -q 'every byte checked' "$logs/client$i"; then
            ok=$((ok + 1))
        else
            echo "client $i failed:"; sed 's/^/  client| /' "$logs/client$i"; status=1
        fi
    done
    echo "$ok of $count clients checked every echoed byte"
    return $status
}

case "${1:-}" in
--server) # BUILD LOCAL REMOTE MESSAGES (in the server's VM)
    build=$2 local_clients=$3 remote_clients=$4 messages=$5
    logs=$(mktemp -d)
    total=$((local_clients + remote_clients))
    start=$SECONDS
    timeout 170 "$build/examples/rdma_echo_server" -p "$port" -t 90 --clients="$total" >"$logs/server" 2>&1 &
    server_pid=$!
    status=0
    clients "$local_clients" "$RCQ_IP" "$messages" "$logs" || status=1
    wait "$server_pid" || { echo "the server failed"; status=1; }
    sed 's/^/  server| /' "$logs/server" | grep -v ' connected (QPN\| finished: ' # one line each, not all
    from_peer=$(grep -c "client $RCQ_PEER_IP:[0-9]* finished: .*every byte checked" "$logs/server")
    from_here=$(grep -c "client $RCQ_IP:[0-9]* finished: .*every byte checked" "$logs/server")
    echo "the server saw $from_here clients of its own VM and $from_peer of the other VM finish," \
        "$((SECONDS - start)) s after it started"
    grep -q "^\[echo server\] $total client(s) finished, 0 lost, 0 stranger(s) refused; done" "$logs/server" ||
        { echo "the server's summary is not the expected one"; status=1; }
    [ "$from_peer" -eq "$remote_clients" ] ||
        { echo "expected $remote_clients clients from $RCQ_PEER_IP, saw $from_peer"; status=1; }
    [ "$from_here" -eq "$local_clients" ] ||
        { echo "expected $local_clients clients from $RCQ_IP, saw $from_here"; status=1; }
    echo "== echo across two VMs, server side: $([ "$status" -eq 0 ] && echo PASS || echo FAIL)"
    rm -rf "$logs"
    exit $status
    ;;
--client) # BUILD REMOTE MESSAGES (in the other VM)
    build=$2 remote_clients=$3 messages=$4
    logs=$(mktemp -d)
    status=0
    clients "$remote_clients" "$RCQ_PEER_IP" "$messages" "$logs" || status=1
    cat "$logs"/client* | awk '/connected in/ { c = $6 + 0; if (c > cmax) cmax = c }
        /bytes echoed in/ { d = $(NF - 4) + 0; if (d > dmax) dmax = d }
        END { printf "slowest client: connected after %d ms, done after %d ms (from its own start)\n", cmax, dmax }'
    echo "== echo across two VMs, client side: $([ "$status" -eq 0 ] && echo PASS || echo FAIL)"
    rm -rf "$logs"
    exit $status
    ;;
esac

# The ctest itself, on the host.
build=$(cd "$1" && pwd)
local_clients=${2:-64} remote_clients=${3:-8} messages=${4:-30}
if "$here/../softroce/run" --host-has-device; then
    echo "rdma tests skipped: the host has an RDMA device; this test joins two Soft-RoCE VMs"
    exit 0
fi
"$here/../softroce/run" --two --timeout 300 --share "$build" --share "$here" \
    --server "bash $here/echo_two_vms.sh --server $build $local_clients $remote_clients $messages" \
    --client "bash $here/echo_two_vms.sh --client $build $remote_clients $messages"
