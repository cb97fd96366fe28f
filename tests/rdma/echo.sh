#!/usr/bin/env bash
# The echo server with many clients on this device: a port scanner connects
# first, then one long-running client that is killed (kill -9) mid-run while
# CLIENTS others each send MESSAGES messages of 1 B to 4 KiB and check every
# echoed byte. Passes when every one of them succeeds, and the server, which
# stops once CLIENTS clients have finished, reports the stranger, the lost
# client and the finished ones.
#   echo.sh EXAMPLES_DIR [CLIENTS] [MESSAGES]
set -uo pipefail
examples=$1 clients=${2:-64} messages=${3:-100}
ip=${RCQ_IP:-127.0.0.1}
port=$((20000 + RANDOM % 20000))
logs=$(mktemp -d)
status=0
trap 'rm -rf "$logs"' EXIT

timeout 120 "$examples/rdma_echo_server" -p "$port" -t 30 --clients="$clients" >"$logs/server" 2>&1 &
server_pid=$!

# The scanner: connects as soon as the port is open, and closes.
for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/$ip/$port") 2>/dev/null; then break; fi
    sleep 0.1
done

# The client to be killed: far more messages than the others. Not under
# `timeout`, so that the kill reaches the client itself; the trap makes sure.
"$examples/rdma_echo_client" "$ip" -p "$port" -t 30 --poll=blocking -n 100000000 >"$logs/victim" 2>&1 &
victim_pid=$!
trap 'kill -9 "$victim_pid" 2>/dev/null; rm -rf "$logs"' EXIT
for _ in $(seq 100); do grep -q connected "$logs/victim" && break; sleep 0.1; done

start=$(date +%s.%N)
pids=()
for i in $(seq "$clients"); do
    timeout 120 "$examples/rdma_echo_client" "$ip" -p "$port" -t 30 --poll=blocking -n "$messages" \
        >"$logs/client$i" 2>&1 &
    pids+=($!)
done
sleep 1
kill -9 "$victim_pid"
wait "$victim_pid" 2>/dev/null

ok=0
for i in $(seq "$clients"); do
    if wait "${pids[$((i - 1))]}" && grep -q 'every byte checked' "$logs/client$i"; then
        ok=$((ok + 1))
    else
        echo "  client $i failed:"; sed 's/^/  client| /' "$logs/client$i"; status=1
    fi
done
end=$(date +%s.%N)
wait "$server_pid" || { echo "  the server failed"; status=1; }
sed 's/^/  server| /' "$logs/server" | grep -v ' connected (QPN\| finished: ' # one line each, not 64
echo "  $ok of $clients clients checked every echoed byte; $(grep -c ' connected (QPN' "$logs/server") connected," \
    "$(grep -c ' finished: ' "$logs/server") finished in the server's log;" \
    "$(awk "BEGIN { printf \"%.1f\", $end - $start }") s from the first start to the last exit"
cat "$logs"/client* | awk '/connected in/ { c = $6 + 0; if (c > cmax) cmax = c }
    /bytes echoed in/ { d = $(NF - 4) + 0; if (d > dmax) dmax = d }
    END { printf "  slowest client: connected after %d ms, done after %d ms (from its own start)\n", cmax, dmax }'
grep -q "^\[echo server\] $clients client(s) finished, 1 lost, [1-9][0-9]* stranger(s) refused; done" "$logs/server" ||
    { echo "  the server's summary is not the expected one"; status=1; }
grep -q ' gone after .* (its process ended); the others go on' "$logs/server" ||
    { echo "  the server did not see the killed client go"; status=1; }
grep -q 'refused a connection that did not speak rcq' "$logs/server" ||
    { echo "  the server did not report the scanner"; status=1; }
exit $status
