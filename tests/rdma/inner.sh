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

# For the RDMA CM's bad-input tests, inside the VM only: a network device
# with an address and no RDMA device behind it, and a host (the gateway) that
# answers ARP but not RoCE.
if [ -n "${RCQ_IN_VM:-}" ]; then
    if ip link add rcqnordma type dummy 2>/dev/null && ip addr add 192.0.2.1/24 dev rcqnordma &&
        ip link set rcqnordma up; then
        export RCQ_NO_RDMA_IP=192.0.2.1
    else
        echo "== note: no dummy network device; the RDMA CM tests that need one are skipped"
    fi
    # qemu's user network: its gateway is .2 of the guest's /24.
    [ -n "${RCQ_IP:-}" ] && [ -z "${RCQ_PEER_IP:-}" ] && export RCQ_GATEWAY_IP=${RCQ_IP%.*}.2
fi

"$build/tests/rcq_rdma_tests" --gtest_color=no
report "rcq_rdma_tests" $?

# Runs a server and a client example against each other on this device and
# checks that both succeed and narrate the transfer.
#   run_pair NAME "SERVER ARGS" "CLIENT ARGS" PATTERN
run_pair() {
    local name=$1 server=$2 client=$3 pattern=$4
    local logs port status=0 server_pid server_status client_status
    logs=$(mktemp -d)
    port=$((20000 + RANDOM % 20000))
    timeout 60 $server -p "$port" -t 30 >"$logs/server" 2>&1 &
    server_pid=$!
    timeout 60 $client -p "$port" -t 30 >"$logs/client" 2>&1
    client_status=$?
    wait "$server_pid"
    server_status=$?
    sed 's/^/  server| /' "$logs/server"
    sed 's/^/  client| /' "$logs/client"
    [ "$server_status" -eq 0 ] && [ "$client_status" -eq 0 ] || status=1
    for side in server client; do
        grep -q 'QP RTR -> RTS' "$logs/$side" && grep -q "$pattern" "$logs/$side" ||
            { echo "  $side did not narrate the transfer"; status=1; }
    done
    report "$name" "$status"
    rm -rf "$logs"
}

examples=$build/examples
ip=${RCQ_IP:-127.0.0.1}
if [ -x "$examples/rdma_server" ]; then
    run_pair "examples: rdma_server + rdma_client" \
        "$examples/rdma_server" "$examples/rdma_client $ip" 'every byte checked'
    run_pair "examples: rdma_server + rdma_client, blocking poll, borrowed buffer" \
        "$examples/rdma_server --poll=blocking --buffer=borrowed" \
        "$examples/rdma_client $ip --poll=adaptive --buffer=external" 'every byte checked'
    folder=$(mktemp -d)
    run_pair "examples: rdma_server + rdma_client, file handshake" \
        "$examples/rdma_server --handshake=file:$folder" \
        "$examples/rdma_client --handshake=file:$folder" 'every byte checked'
    rm -rf "$folder"
    run_pair "examples: rdma_server + rdma_client, rdma_cm handshake" \
        "$examples/rdma_server --handshake=rdma_cm" \
        "$examples/rdma_client $ip --handshake=rdma_cm" 'every byte checked'
    bash "$(dirname "$0")/../../examples/launch_env.sh" -t 60 \
        "$examples/rdma_server" --handshake=env --quiet -- \
        "$examples/rdma_client" --handshake=env --quiet
    report "examples: rdma_server + rdma_client through launch_env.sh (env handshake)" $?
    run_pair "examples: rdma_write_read" \
        "$examples/rdma_write_read server" "$examples/rdma_write_read client $ip" 'done'
fi

if [ -x "$examples/async_echo" ]; then
    run_pair "examples: async_echo (coroutines on one io_context), busy poll" \
        "$examples/async_echo server" "$examples/async_echo client $ip" 'async echo: 100 messages of 4096 bytes'
    run_pair "examples: async_echo, blocking poll against adaptive, 2 B" \
        "$examples/async_echo server --poll=blocking -s 2" \
        "$examples/async_echo client $ip --poll=adaptive -s 2" 'async echo: 100 messages of 2 bytes'
fi

if [ -x "$examples/rdma_echo_server" ]; then
    # One server, one PD/CQ/SRQ, 64 client processes on this device; a
    # scanner first and a client killed mid-run (tests/rdma/echo.sh).
    bash "$(dirname "$0")/echo.sh" "$examples" 64 30
    report "examples: rdma_echo_server + 64 rdma_echo_client, a scanner, one client killed" $?
fi

# hello_pair SERVER CLIENT SHOW: the README's pair on a fresh port; true when
# both exit 0 and each printed the other's message. Their output is shown
# always (SHOW=always) or only when they failed.
hello_pair() {
    local logs server_pid server_status client_status status port
    logs=$(mktemp -d)
    port=$((20000 + RANDOM % 20000))
    timeout 60 "$1" "$port" >"$logs/server" 2>&1 &
    server_pid=$!
    timeout 60 "$2" "$ip" "$port" >"$logs/client" 2>&1
    client_status=$?
    wait "$server_pid"
    server_status=$?
    [ "$server_status" -eq 0 ] && [ "$client_status" -eq 0 ] &&
        grep -qx 'received: hello from the client' "$logs/server" &&
        grep -qx 'received: hello from the server' "$logs/client"
    status=$?
    if [ "$3" = always ] || [ "$status" -ne 0 ]; then
        sed 's/^/  server| /' "$logs/server"
        sed 's/^/  client| /' "$logs/client"
    fi
    rm -rf "$logs"
    return "$status"
}

if [ -x "$examples/hello_server" ]; then
    # The README's server/client pair, then its troubleshooting table.
    hello_pair "$examples/hello_server" "$examples/hello_client" always
    report "examples: hello_server + hello_client (the README's pair)" $?
    if [ -x "$examples/hello_server_separate" ]; then
        # The same pair built with RCQ_SEPARATE_COMPILATION, against each other
        # and against the header-only build.
        for pair in "separate separate" "separate header-only" "header-only separate"; do
            read -r server_kind client_kind <<<"$pair"
            server_bin=$examples/hello_server client_bin=$examples/hello_client
            [ "$server_kind" = separate ] && server_bin=${server_bin}_separate
            [ "$client_kind" = separate ] && client_bin=${client_bin}_separate
            hello_pair "$server_bin" "$client_bin" on-failure
            report "examples: hello pair, server $server_kind, client $client_kind" $?
        done
    fi
    bash "$(dirname "$0")/troubleshooting.sh" "$examples"
    report "examples: the README's troubleshooting cases" $?
fi

if [ -x "$examples/custom_policies" ]; then
    timeout 60 "$examples/custom_policies" --quiet
    report "examples: custom_policies" $?
fi

if [ -x "$examples/rcq_rping" ] && [ -x "$examples/rcq_rc_pingpong" ]; then
    bash "$(dirname "$0")/interop.sh" "$build"
    report "interop with stock rping and ibv_rc_pingpong (each pair above)" $?
fi

if [ -x "$examples/rdma_mesh" ]; then
    # The MPI mesh: 4 ranks on this one device, each sending a checked
    # message to every other. Open MPI keeps its own traffic off the RDMA
    # device (pml ob1, btl self + vader shared memory, osc pt2pt: no openib,
    # ofi or ucx; all ranks are on this host, so no tcp either); root needs
    # --allow-run-as-root, 4 ranks on 2 cores --oversubscribe. Open MPI
    # refuses a node named "(none)", the VM's hostname until one is set.
    [ -n "${RCQ_IN_VM:-}" ] && [ "$(hostname)" = "(none)" ] && hostname rcq-vm
    logs=$(mktemp -d)
    timeout 120 mpirun -np 4 --oversubscribe --allow-run-as-root --timeout 100 \
        --mca pml ob1 --mca btl self,vader --mca osc pt2pt \
        "$examples/rdma_mesh" ${RCQ_DEVICE:+-d "$RCQ_DEVICE"} ${RCQ_GID_INDEX:+-g "$RCQ_GID_INDEX"} \
        -t 60 >"$logs/out" 2>&1
    status=$?
    sed 's/^/  mesh| /' "$logs/out"
    if [ "$status" -eq 0 ]; then
        for rank in 0 1 2 3; do
            grep -q "^rank $rank: 3 of 3 messages received and checked\$" "$logs/out" ||
                { echo "  rank $rank did not report its 3 checked messages"; status=1; }
        done
        grep -q 'every message between every pair of ranks checked' "$logs/out" || status=1
    fi
    report "examples: rdma_mesh under mpirun -np 4 (MPI handshake)" "$status"
    rm -rf "$logs"
fi

echo "== rdma: $passed parts passed, $failed failed"
[ "$failed" -eq 0 ]
