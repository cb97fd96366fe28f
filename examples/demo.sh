#!/usr/bin/env bash
# The main job: builds rdma_server and rdma_client and runs them against each
# other, narrated: on the host's RDMA device when it has one, else on
# Soft-RoCE (rxe0) inside a VM, or inside two VMs joined by a virtual wire.
#   bash examples/demo.sh [--two-vms] [--write-read] [extra example flags, e.g. -s 65536]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${RCQ_BUILD_DIR:-$root/build}

two_vms=0 server=rdma_server client=rdma_client
args=()
for arg in "$@"; do
    case $arg in
        --two-vms) two_vms=1 ;;
        --write-read) server="rdma_write_read server" client="rdma_write_read client" ;;
        -h|--help) sed -n '2,6s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) args+=("$arg") ;;
    esac
done

bash "$root/tests/install-deps.sh"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" --target rdma_server rdma_client rdma_write_read >/dev/null
bin=$build/examples
port=18515

if [ "$two_vms" -eq 1 ]; then
    echo "demo: server and client in two VMs, RoCE v2 over a virtual wire"
    exec "$root/tests/softroce/run" --two --share "$build" --share "$root" \
        --server "$bin/$server -p $port ${args[*]}" \
        --client "$bin/$client \$RCQ_PEER_IP -p $port ${args[*]}"
fi

# Runs the pair on the device at hand, each line tagged with its side.
pair=$(cat <<PAIR
set -u -o pipefail
$bin/$server -p $port ${args[*]} 2>&1 | sed -u 's/^/server| /' &
server_pid=\$!
sleep 0.2
$bin/$client \${RCQ_IP:-127.0.0.1} -p $port ${args[*]} 2>&1 | sed -u 's/^/client| /'
client=\${PIPESTATUS[0]}
wait \$server_pid; server=\$?
echo "demo: server exit \$server, client exit \$client"
[ \$server -eq 0 ] && [ \$client -eq 0 ]
PAIR
)
if "$root/tests/softroce/run" --host-has-device; then
    echo "demo: using the host's RDMA device"
    exec bash -c "$pair"
fi
echo "demo: no RDMA device on this host; running on Soft-RoCE (rxe0) in a VM"
exec "$root/tests/softroce/run" --share "$build" --share "$root" -- bash -c "$pair"
