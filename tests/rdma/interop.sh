#!/usr/bin/env bash
# rcq against programs it did not write, on the device at hand: rdma-core's
# stock rping (over the RDMA CM) and ibv_rc_pingpong (its own TCP exchange),
# each in both roles. Prints "== PASS: name" or "== FAIL: name" per pair, like
# inner.sh, and exits non-zero if any failed.
#   interop.sh BUILD_DIR
set -uo pipefail
build=$1
examples=$build/examples
ip=${RCQ_IP:-127.0.0.1}
device=${RCQ_DEVICE:-}
passed=0 failed=0

report() { # NAME STATUS
    if [ "$2" -eq 0 ]; then
        echo "== PASS: $1"; passed=$((passed + 1))
    else
        echo "== FAIL: $1 (exit $2)"; failed=$((failed + 1))
    fi
}

for tool in rping ibv_rc_pingpong; do
    command -v "$tool" >/dev/null || { echo "== FAIL: interop: $tool is missing (apt-get install rdmacm-utils ibverbs-utils)"; exit 1; }
done
[ -n "$device" ] || device=$(ls /sys/class/infiniband | head -n 1)

# The RoCE v2 GID index of $ip on $device, as ibv_rc_pingpong's -g wants it.
gid_index=${RCQ_GID_INDEX:-}
if [ -z "$gid_index" ]; then
    want=$(printf '0000:0000:0000:0000:0000:ffff:%02x%02x:%02x%02x' ${ip//./ })
    for f in /sys/class/infiniband/"$device"/ports/1/gids/*; do
        n=${f##*/}
        if [ "$(cat "$f" 2>/dev/null)" = "$want" ] &&
            grep -q 'v2' "/sys/class/infiniband/$device/ports/1/gid_attrs/types/$n" 2>/dev/null; then
            gid_index=$n
            break
        fi
    done
fi
echo "== interop on $device, IP $ip, GID index ${gid_index:-?}"

# Waits up to SECS for PATTERN to appear in FILE.
wait_for_line() { # FILE PATTERN SECS
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# Runs SERVER in the background, then CLIENT once the server's log shows
# READY (or at once when READY is empty); both must exit 0 and each log must
# show its CHECK pattern COUNT times.
#   pair NAME READY "SERVER" "CLIENT" SERVER_CHECK CLIENT_CHECK COUNT
pair() {
    local name=$1 ready=$2 server=$3 client=$4 server_check=$5 client_check=$6 count=$7
    local logs status=0 server_pid server_status client_status
    logs=$(mktemp -d)
    timeout 120 $server >"$logs/server" 2>&1 &
    server_pid=$!
    if [ -n "$ready" ] && ! wait_for_line "$logs/server" "$ready" 60; then
        echo "  the server did not get ready"; status=1
    fi
    timeout 120 $client >"$logs/client" 2>&1
    client_status=$?
    wait "$server_pid"
    server_status=$?
    sed 's/^/  server| /' "$logs/server" | tail -n 14
    sed 's/^/  client| /' "$logs/client" | tail -n 14
    echo "  exit status: server $server_status, client $client_status"
    [ "$server_status" -eq 0 ] && [ "$client_status" -eq 0 ] || status=1
    local seen
    seen=$(grep -c -- "$server_check" "$logs/server")
    [ "$seen" -eq "$count" ] || { echo "  server: $seen lines match '$server_check', expected $count"; status=1; }
    seen=$(grep -c -- "$client_check" "$logs/client")
    [ "$seen" -eq "$count" ] || { echo "  client: $seen lines match '$client_check', expected $count"; status=1; }
    if grep -qi 'invalid data\|mismatch' "$logs/server" "$logs/client"; then
        echo "  a side reported bad data"; status=1
    fi
    report "$name" "$status"
    rm -rf "$logs"
}

port() { echo $((20000 + RANDOM % 20000)); }

p=$(port)
pair "interop: stock rping -s against rcq_rping -c (RDMA CM, -V, 10 pings)" "" \
    "rping -s -a $ip -p $p -v -V -C 10" \
    "$examples/rcq_rping -c -a $ip -p $p -v -V -C 10 --timeout 60" \
    '^server ping data: rdma-ping-' '^ping data: rdma-ping-' 10

p=$(port)
pair "interop: rcq_rping -s against stock rping -c (RDMA CM, -V, 10 pings)" "listening on" \
    "$examples/rcq_rping -s -a $ip -p $p -v -V -C 10 --timeout 60" \
    "rping -c -a $ip -p $p -v -V -C 10" \
    '^server ping data: rdma-ping-' '^ping data: rdma-ping-' 10

p=$(port)
pair "interop: stock ibv_rc_pingpong server against rcq_rc_pingpong client (100 x 4 KiB)" "" \
    "ibv_rc_pingpong -d $device -g $gid_index -p $p -n 100" \
    "$examples/rcq_rc_pingpong $ip -d $device -g $gid_index -p $p -n 100 --timeout 60" \
    '100 iters in' '100 iters in .* (every reply checked)' 1

p=$(port)
pair "interop: rcq_rc_pingpong server against stock ibv_rc_pingpong client (100 x 4 KiB, -c)" "listening on" \
    "$examples/rcq_rc_pingpong -d $device -g $gid_index -p $p -n 100 --timeout 60" \
    "ibv_rc_pingpong -d $device -g $gid_index -p $p -n 100 -c $ip" \
    '100 iters in .* (every message checked)' '100 iters in' 1

echo "== interop: $passed parts passed, $failed failed"
[ "$failed" -eq 0 ]
