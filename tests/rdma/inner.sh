#!/usr/bin/env bash
# Runs the RDMA tests of BUILD_DIR on the device at hand (inside the VM, or
# on a host device), reporting each part and exiting non-zero if any failed.
#   inner.sh BUILD_DIR
set -uo pipefail
build=$1
passed=0 failed=0

report() { # NAME STATUS
    if [ "$2" -eq 0 ]; then
        echo "== PASS: $1"; passed=$((passed + 1))
    else
        echo "== FAIL: $1 (exit $2)"; failed=$((failed + 1))
    fi
}

echo "== device ${RCQ_DEVICE:-(first)}, GID index ${RCQ_GID_INDEX:-(automatic)}, IP ${RCQ_IP:-127.0.0.1}"

"$build/tests/rcq_rdma_tests" --gtest_color=no
report "rcq_rdma_tests" $?

# The example server and client, end to end over TCP and RoCE, narrated.
server=$build/examples/rdma_server client=$build/examples/rdma_client
if [ -x "$server" ] && [ -x "$client" ]; then
    logs=$(mktemp -d)
    port=$((20000 + RANDOM % 20000))
    timeout 60 "$server" -p "$port" -t 30 >"$logs/server" 2>&1 &
    server_pid=$!
    timeout 60 "$client" "${RCQ_IP:-127.0.0.1}" -p "$port" -t 30 >"$logs/client" 2>&1
    client_status=$?
    wait "$server_pid"
    server_status=$?
    sed 's/^/  server| /' "$logs/server"
    sed 's/^/  client| /' "$logs/client"
    status=0
    [ "$server_status" -eq 0 ] && [ "$client_status" -eq 0 ] || status=1
    for side in server client; do
        grep -q 'QP RTR -> RTS' "$logs/$side" && grep -q 'every byte checked' "$logs/$side" ||
            { echo "  $side did not narrate the transfer"; status=1; }
    done
    report "examples: rdma_server + rdma_client" "$status"
    rm -rf "$logs"
fi

echo "== rdma: $passed parts passed, $failed failed"
[ "$failed" -eq 0 ]
