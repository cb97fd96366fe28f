#!/usr/bin/env bash
# rcq against perftest on a faulty wire: the netem settings of the fault
# table (tests/faults), across two Soft-RoCE VMs, each transfer timed.
#   bench/faults_compare.sh [BUILD_DIR]        (default: $RCQ_BUILD_DIR, else <repo>/build)
# Needs BUILD_DIR/tests/rcq_fault_transfer and perftest (ib_send_bw,
# ib_write_bw) on the host. Run by hand, not by the test command: it boots
# two emulated VMs and takes several minutes on a 2-core host.
#
# For each setting, netem goes on the server VM's eth0 (its outgoing
# packets suffer: ACKs and NAKs of the client's data), as in tests/faults,
# and three transfers run one after the other, each moving MIB MiB
# (RCQ_FAULTS_MIB, default 2) from client to server in 64 KiB messages,
# 16 in flight, retry_cnt 7 (perftest's, which it cannot change; on rxe it
# means "retry for ever", so only the time limit ends a stuck run):
#   rcq     rcq_fault_transfer's "send" and "write" phases (every byte checked)
#   perftest ib_send_bw and ib_write_bw -s 65536 -n (MIB * 16) -t 16
# Each run is bounded by RCQ_COMPARE_RUN_TIMEOUT seconds (default 90); a run
# that does not finish in it is reported as such. The table it prints (MiB/s,
# and the slowdown against no loss) is the README's.
# Inside a VM (called by itself): faults_compare.sh --side server|client BUILD_DIR
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
mib=${RCQ_FAULTS_MIB:-2}
run_timeout=${RCQ_COMPARE_RUN_TIMEOUT:-90}
settings=("none" "loss 1%" "loss 5%" "loss 20%" "duplicate 5%" "delay 1ms reorder 25%")

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# ---------------------------------------------------------------- inside ----
side() {
    local role=$1 build=$2 tool=$2/tests/rcq_fault_transfer
    local dev=(-d "${RCQ_DEVICE:-rxe0}" -x "${RCQ_GID_INDEX:-1}" -F)
    local iters=$((mib * 16)) i=0 setting port
    ulimit -l unlimited 2>/dev/null || true
    # perftest's client gives up at once when nobody listens yet: try again
    # for up to 30 s (the server may still be finishing the previous run).
    perftest_client() {
        local start end
        start=$(now)
        end=$(awk -v s="$start" 'BEGIN { printf "%d", s + 30 }')
        until timeout -k 5 "$run_timeout" "$@" "$RCQ_PEER_IP" >"$log" 2>&1; do
            grep -q "BW average" "$log" && return 0
            [ "$(date +%s)" -ge "$end" ] && return 1
            sleep 0.3
        done
    }
    for setting in "${settings[@]}"; do
        port=$((19600 + 10 * i))
        i=$((i + 1))
        if [ "$role" = server ]; then
            tc qdisc del dev eth0 root 2>/dev/null
            if [ "$setting" != none ]; then
                # shellcheck disable=SC2086
                tc qdisc replace dev eth0 root netem $setting || { echo "== FAIL: tc netem $setting"; exit 1; }
            fi
            timeout -k 5 $((2 * run_timeout)) "$tool" server -p "$port" -m "$mib" -c 65536 -t "$run_timeout" \
                --retry 7 >/dev/null 2>&1
            timeout -k 5 $((run_timeout + 30)) ib_send_bw "${dev[@]}" -s 65536 -n "$iters" -t 16 \
                -p $((port + 1)) >/dev/null 2>&1
            timeout -k 5 $((run_timeout + 30)) ib_write_bw "${dev[@]}" -s 65536 -n "$iters" -t 16 \
                -p $((port + 2)) >/dev/null 2>&1
            continue
        fi
        log=$(mktemp)
        local start rcq_send=- rcq_write=- send_bw=- write_bw=-
        start=$(now)
        if timeout -k 5 $((2 * run_timeout)) "$tool" client "$RCQ_PEER_IP" -p "$port" -m "$mib" -c 65536 \
            -t "$run_timeout" --retry 7 >"$log" 2>&1; then
            rcq_send=$(awk '$1 == "phase" && $2 == "send" { print $8 }' "$log" | tr -d '(')
            rcq_write=$(awk '$1 == "phase" && $2 == "write" { print $8 }' "$log" | tr -d '(')
        else
            echo "rcq run under '$setting' failed: $(tail -1 "$log")"
        fi
        echo "rcq: $setting: $(secs "$start" "$(now)") s"
        perftest_client ib_send_bw "${dev[@]}" -s 65536 -n "$iters" -t 16 -p $((port + 1)) &&
            send_bw=$(awk '$1 == 65536 { print $4 }' "$log" | tail -1)
        perftest_client ib_write_bw "${dev[@]}" -s 65536 -n "$iters" -t 16 -p $((port + 2)) &&
            write_bw=$(awk '$1 == 65536 { print $4 }' "$log" | tail -1)
        echo "RESULT|$setting|$rcq_send|$send_bw|$rcq_write|$write_bw"
        rm -f "$log"
    done
    [ "$role" = server ] && tc qdisc del dev eth0 root 2>/dev/null
    return 0
}

if [ "${1:-}" = --side ]; then
    side "$2" "$3"
    exit 0
fi

# --------------------------------------------------------------- outside ----
build=$(cd "${1:-${RCQ_BUILD_DIR:-$repo/build}}" && pwd)
[ -x "$build/tests/rcq_fault_transfer" ] ||
    { echo "faults_compare: build rcq_fault_transfer first (cmake --build $build --target rcq_fault_transfer)"; exit 1; }
command -v ib_send_bw >/dev/null || { echo "faults_compare: perftest is not installed"; exit 1; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
started=$SECONDS
"$repo/tests/softroce/run" --two --timeout 2400 --share "$build" --share "$repo" \
    --server "bash $here/faults_compare.sh --side server $build" \
    --client "bash $here/faults_compare.sh --side client $build" 2>&1 | tee "$out"
echo
echo "rcq and perftest, client to server, $mib MiB in 64 KiB messages, 16 in flight, retry_cnt 7;"
echo "MiB/s (slowdown against no loss); '-' did not finish within ${run_timeout} s. $((SECONDS - started)) s in all."
echo
echo "| netem on the server's eth0 | rcq SEND | ib_send_bw | rcq WRITE | ib_write_bw |"
echo "| --- | ---: | ---: | ---: | ---: |"
sed -n 's/^\[client\] RESULT|//p' "$out" | awk -F'|' '
    function cell(v, base) {
        if (v == "-" || v == "") return "did not finish"
        if (base == "" || base == "-" || v == 0) return sprintf("%.2f", v)
        return sprintf("%.2f (%.1fx)", v, base / v)
    }
    NR == 1 { for (i = 2; i <= 5; i++) base[i] = $i }
    { printf "| %s | %s | %s | %s | %s |\n", $1, cell($2, base[2]), cell($3, base[3]), cell($4, base[4]), cell($5, base[5]) }'
