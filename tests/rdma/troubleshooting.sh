#!/usr/bin/env bash
# The README's troubleshooting table, reproduced: runs hello_server and
# hello_client into each mistake a new user makes and checks that the error
# says what the table says. Runs on the device at hand (in the VM: rxe0).
#   troubleshooting.sh EXAMPLES_DIR
# Prints each case's stderr and "== PASS|FAIL: troubleshooting: CASE".
set -uo pipefail
examples=$1
ip=${RCQ_IP:-127.0.0.1}
device=${RCQ_DEVICE:-}
status=0
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

# expect CASE FILE REGEX: FILE (a program's stderr) must match REGEX.
expect() {
    sed 's/^/  | /' "$2"
    if grep -Eq "$3" "$2"; then
        echo "== PASS: troubleshooting: $1"
    else
        echo "== FAIL: troubleshooting: $1 (no match for: $3)"; status=1
    fi
}
free_port() { echo $((20000 + RANDOM % 20000)); }

# A device that is not there.
timeout 60 "$examples/hello_server" "$(free_port)" mlx5_9 >/dev/null 2>"$logs/err"
expect "wrong device" "$logs/err" "RDMA device 'mlx5_9' not found \\[hint: devices present: "

# A GID index with no GID behind it.
timeout 60 "$examples/hello_server" "$(free_port)" "$device" 9 >/dev/null 2>"$logs/err"
expect "wrong GID index" "$logs/err" 'GID index 9 on .* is empty or out of range.*the RoCE v2 IPv4 GID is index'

# One side on the link-local GID (index 0), the other on the IPv4 one: the
# peers cannot reach each other's GID.
port=$(free_port)
timeout 60 "$examples/hello_server" "$port" "$device" >/dev/null 2>"$logs/server" &
server=$!
timeout 60 "$examples/hello_client" "$ip" "$port" "$device" 0 >/dev/null 2>"$logs/err"
wait "$server"
expect "GID types differ between the sides" "$logs/err" 'RoCE v2 cannot carry packets between the two families'

# A port another program holds.
port=$(free_port)
timeout 60 "$examples/hello_server" "$port" "$device" >/dev/null 2>"$logs/first" &
first=$!
sleep 1
timeout 60 "$examples/hello_server" "$port" "$device" >/dev/null 2>"$logs/err"
expect "port in use" "$logs/err" 'Address already in use'
timeout 60 "$examples/hello_client" "$ip" "$port" "$device" >/dev/null 2>&1 # lets the first one finish
wait "$first"

# A client started with no server: it retries until its deadline.
timeout 90 "$examples/hello_client" "$ip" "$(free_port)" "$device" >/dev/null 2>"$logs/err"
expect "no server yet" "$logs/err" 'Connection refused|timed out'

# A message longer than the receive the server posted.
port=$(free_port)
timeout 60 "$examples/hello_server" "$port" "$device" >/dev/null 2>"$logs/server" &
server=$!
timeout 60 "$examples/hello_client" "$ip" "$port" "$device" "" "$(head -c 2000 /dev/zero | tr '\0' x)" \
    >/dev/null 2>"$logs/client"
wait "$server"
expect "message longer than the receive (server side)" "$logs/server" 'local QP operation error|local length error'
expect "message longer than the receive (client side)" "$logs/client" 'invalid request|remote'

echo "== troubleshooting: $([ $status -eq 0 ] && echo all cases matched || echo some cases did not match)"
exit "$status"
