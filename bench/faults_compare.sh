#!/usr/bin/env bash
# rcq against perftest on a faulty wire: the netem settings of the fault
# table (tests/faults), across two Soft-RoCE VMs, each transfer timed.
#   bench/faults_compare.sh [BUILD_DIR]        (default: $RCQ_BUILD_DIR, else <repo>/build)
# Needs BUILD_DIR/tests/rcq_fault_transfer and perftest (ib_send_bw,
# ib_write_bw): installed on the host, or unpacked in a folder named by
# RCQ_PERFTEST_ROOT (`apt-get download perftest libibumad3 libpci3` and
# `dpkg-deb -x` of each into it; inside the build folder, which the VMs
# see). Run by hand, not by the test command: it boots two emulated VMs and
# takes several minutes on a 2-core host.
#
# For each setting, netem goes on the server VM's eth0 (its outgoing
# packets suffer), as in tests/faults, and the transfers run one after the
# other, each moving MIB MiB (RCQ_FAULTS_MIB, default 2) in 64 KiB messages,
# 16 in flight, retry_cnt 7 (perftest's, which it cannot change; on rxe it
# means "retry for ever", so only the time limit ends a stuck run):
#   rcq      rcq_fault_transfer (every byte checked): its recv phase (SENDs
#            from the netem side), read phase (READ responses from it) and
#            send phase (SENDs towards it: only its ACKs are lossy)
#   perftest ib_send_bw -s 65536 -n (MIB * 16) -t 16 with its sender on the
#            netem side, ib_read_bw with its responder there, ib_send_bw
#            with its receiver there
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
    if [ -n "${3:-}" ]; then
        export PATH=$3/usr/bin:$PATH LD_LIBRARY_PATH=$3/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    fi
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
    perftest_server() { timeout -k 5 $((run_timeout + 30)) "$@" >"$log" 2>&1; }
    bw_of() { awk '$1 == 65536 { print $4 }' "$log" | tail -1; }
    for setting in "${settings[@]}"; do
        port=$((19600 + 10 * i))
        i=$((i + 1))
        log=$(mktemp)
        local perf=(-s 65536 -n "$iters" -t 16)
        if [ "$role" = server ]; then
            tc qdisc del dev eth0 root 2>/dev/null
            if [ "$setting" != none ]; then
                # shellcheck disable=SC2086
                tc qdisc replace dev eth0 root netem $setting || { echo "== FAIL: tc netem $setting"; exit 1; }
            fi
            timeout -k 5 $((2 * run_timeout)) "$tool" server -p "$port" -m "$mib" -c 65536 -t "$run_timeout" \
                --retry 7 >/dev/null 2>&1
            perftest_server ib_send_bw "${dev[@]}" "${perf[@]}" -p $((port + 1))      # receives: its ACKs are lossy
            perftest_client ib_send_bw "${dev[@]}" "${perf[@]}" -p $((port + 2))      # sends: its data is lossy
            perftest_server ib_read_bw "${dev[@]}" "${perf[@]}" -p $((port + 3))      # answers READs: lossy data
            rm -f "$log"
            continue
        fi
        local start send_data=- send_acks=- read=- perf_data=- perf_acks=- perf_read=-
        start=$(now)
        if timeout -k 5 $((2 * run_timeout)) "$tool" client "$RCQ_PEER_IP" -p "$port" -m "$mib" -c 65536 \
            -t "$run_timeout" --retry 7 >"$log" 2>&1; then
            phase() { awk -v p="$1" '$1 == "phase" && $2 == p { print $8 }' "$log" | tr -d '('; }
            send_acks=$(phase send)
            send_data=$(phase recv)
            read=$(phase read)
        else
            echo "rcq run under '$setting' failed: $(tail -1 "$log")"
        fi
        echo "rcq: $setting: $(secs "$start" "$(now)") s"
        perftest_client ib_send_bw "${dev[@]}" "${perf[@]}" -p $((port + 1)) && perf_acks=$(bw_of)
        perftest_server ib_send_bw "${dev[@]}" "${perf[@]}" -p $((port + 2)) && perf_data=$(bw_of)
        perftest_client ib_read_bw "${dev[@]}" "${perf[@]}" -p $((port + 3)) && perf_read=$(bw_of)
        echo "RESULT|$setting|$send_data|$perf_data|$read|$perf_read|$send_acks|$perf_acks"
        rm -f "$log"
    done
    [ "$role" = server ] && tc qdisc del dev eth0 root 2>/dev/null
    return 0
}

if [ "${1:-}" = --side ]; then
    side "$2" "$3" "${4:-}"
    exit 0
fi

# --------------------------------------------------------------- outside ----
build=$(cd "${1:-${RCQ_BUILD_DIR:-$repo/build}}" && pwd)
[ -x "$build/tests/rcq_fault_transfer" ] ||
    { echo "faults_compare: build rcq_fault_transfer first (cmake --build $build --target rcq_fault_transfer)"; exit 1; }
perftest_root=${RCQ_PERFTEST_ROOT:+$(cd "$RCQ_PERFTEST_ROOT" && pwd)}
if [ -n "$perftest_root" ]; then
    [ -x "$perftest_root/usr/bin/ib_send_bw" ] || { echo "faults_compare: no perftest in $perftest_root"; exit 1; }
else
    command -v ib_send_bw >/dev/null ||
        { echo "faults_compare: perftest is not installed (or set RCQ_PERFTEST_ROOT, see the top)"; exit 1; }
fi
out=$(mktemp)
trap 'rm -f "$out"' EXIT
started=$SECONDS
"$repo/tests/softroce/run" --two --timeout 2400 --share "$build" --share "$repo" \
    --server "bash $here/faults_compare.sh --side server $build $perftest_root" \
    --client "bash $here/faults_compare.sh --side client $build $perftest_root" 2>&1 | tee "$out"
echo
echo "rcq and perftest, $mib MiB in 64 KiB messages, 16 in flight, retry_cnt 7; MiB/s (slowdown"
echo "against no loss); '-': did not finish within ${run_timeout} s. $((SECONDS - started)) s in all."
echo "Data through the lossy link: SEND from the netem side (rcq's recv phase), READ responses"
echo "from it (rcq's read phase); ACKs through it: SEND towards the netem side (rcq's send phase)."
echo
echo "| netem on the server's eth0 | SEND, rcq | SEND, ib_send_bw | READ, rcq | READ, ib_read_bw | SEND (lossy ACKs), rcq | SEND (lossy ACKs), ib_send_bw |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
sed -n 's/^\[client\] RESULT|//p' "$out" | awk -F'|' '
    function cell(v, base) {
        if (v == "-" || v == "") return "did not finish"
        if (base == "" || base == "-" || v == 0) return sprintf("%.2f", v)
        return sprintf("%.2f (%.1fx)", v, base / v)
    }
    NR == 1 { for (i = 2; i <= 7; i++) base[i] = $i }
    {
        printf "| %s |", $1
        for (i = 2; i <= 7; i++) printf " %s |", cell($i, base[i])
        printf "\n"
    }'
