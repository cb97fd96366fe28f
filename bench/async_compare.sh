#!/usr/bin/env bash
# rcq's asynchronous layer (a C++20 coroutine on one io_context) against
# rcq's synchronous programs and perftest, A/B in one run on the same device.
#
#   bench/async_compare.sh [--build DIR] [--rounds N]
#
# Latency: SEND/RECV ping-pong, 2 B and 4 KiB, -n 1000: rcq_lat --op async,
# rcq_lat --op send, ib_send_lat, alternately, N rounds (default 3); figure:
# t_typical (median half round trip), median over the rounds.
# Message rate: RDMA WRITE of 64 B, -n 20000: rcq_bw --async, rcq_bw,
# ib_write_bw (-Q 1, each WRITE signaled, as the async path signals all).
# perftest runs when it is installed (apt-get install perftest) or unpacked
# in a folder named by RCQ_PERFTEST_ROOT (`apt-get download perftest
# libibumad3 libpci3`, then `dpkg-deb -x` of each into it; inside the build
# folder, which the VM sees); otherwise its column reads "-".
# On a host with an ACTIVE RDMA device the programs run right here;
# otherwise inside one boot of the Soft-RoCE VM. Prints a Markdown table.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

inner() {
    local build=$1 work=$2 rounds=$3 perftest_root=${4:-}
    if [[ -n $perftest_root ]]; then
        export PATH=$perftest_root/usr/bin:$PATH
        export LD_LIBRARY_PATH=$perftest_root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    fi
    local ip=${RCQ_IP:-127.0.0.1} dev=() port=22000
    [[ -n ${RCQ_DEVICE:-} ]] && dev+=(-d "$RCQ_DEVICE")
    [[ -n ${RCQ_GID_INDEX:-} ]] && dev+=(-x "$RCQ_GID_INDEX")
    ulimit -l unlimited 2>/dev/null || true
    mkdir -p "$work"
    pair() { # NAME CMD...: server and client of the same command line
        local name=$1
        shift
        port=$((port + 1))
        timeout -k 5 120 "$@" -p "$port" >"$work/$name.server" 2>&1 &
        local server_pid=$! waited=0
        until ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; do
            sleep 0.05
            waited=$((waited + 1))
            if ((waited > 400)) || ! kill -0 "$server_pid" 2>/dev/null; then break; fi
        done
        timeout -k 5 120 "$@" -p "$port" "$ip" >"$work/$name.client" 2>&1 || echo "$name: client failed" >&2
        wait "$server_pid" || echo "$name: server failed" >&2
    }
    local r size
    for ((r = 1; r <= rounds; r++)); do
        for size in 2 4096; do
            pair "r${r}_async_lat_$size" "$build/bench/rcq_lat" --op async "${dev[@]}" -s "$size" -n 1000
            pair "r${r}_sync_lat_$size" "$build/bench/rcq_lat" --op send "${dev[@]}" -s "$size" -n 1000
            command -v ib_send_lat >/dev/null &&
                pair "r${r}_perftest_lat_$size" ib_send_lat "${dev[@]}" -s "$size" -n 1000
        done
        pair "r${r}_async_bw_64" "$build/bench/rcq_bw" --async "${dev[@]}" -s 64 -n 20000 -Q 1
        pair "r${r}_sync_bw_64" "$build/bench/rcq_bw" "${dev[@]}" -s 64 -n 20000 -Q 1
        command -v ib_write_bw >/dev/null &&
            pair "r${r}_perftest_bw_64" ib_write_bw "${dev[@]}" -s 64 -n 20000 -Q 1
        true
    done
}

if [[ ${1:-} == --inner ]]; then
    shift
    inner "$@"
    exit 0
fi

build=${RCQ_BUILD_DIR:-$repo/build}
rounds=3
while (($#)); do
    case $1 in
    --build) build=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    *) echo "usage: $0 [--build DIR] [--rounds N]" >&2; exit 2 ;;
    esac
done
build=$(cd "$build" && pwd)
perftest_root=${RCQ_PERFTEST_ROOT:+$(cd "$RCQ_PERFTEST_ROOT" && pwd)}
if [[ -n $perftest_root && ! -x $perftest_root/usr/bin/ib_send_lat ]]; then
    echo "async_compare: no perftest in $perftest_root" >&2
    exit 1
fi
work=$build/async-compare
rm -rf "$work"
mkdir -p "$work"
if ls /sys/class/infiniband/*/ports/*/state 2>/dev/null | xargs -r grep -qs ACTIVE; then
    inner "$build" "$work" "$rounds" "$perftest_root"
else
    "$repo/tests/softroce/run" --share "$build" --share "$repo" -- \
        bash "$repo/bench/async_compare.sh" --inner "$build" "$work" "$rounds" "$perftest_root"
fi

# t_typical: the 5th column of the row after the header line (rcq_lat and
# ib_send_lat alike); MsgRate (Mpps): the 4th column of rcq_bw's row, the
# 5th of ib_write_bw's (which prints BW peak before BW average).
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'; }
lat() { for f in "$work"/r*_"$1"_lat_"$2".client; do
    [[ -e $f ]] || continue
    awk '/t_typical/ { getline; print $5; exit }' "$f"; done | median; }
rate() { for f in "$work"/r*_"$1"_bw_64.client; do
    [[ -e $f ]] || continue
    awk -v col="$([[ $1 == perftest ]] && echo 5 || echo 4)" \
        '/MsgRate/ { getline; print $col; exit }' "$f"; done | median; }
echo "| test | coroutine (rcq/async) | rcq synchronous | perftest |"
echo "| --- | ---: | ---: | ---: |"
for size in 2 4096; do
    echo "| SEND latency, t_typical, $size B | $(lat async $size) us | $(lat sync $size) us | $(lat perftest $size) us |"
done
echo "| WRITE message rate, 64 B, every WRITE signaled | $(rate async) Mpps | $(rate sync) Mpps | $(rate perftest) Mpps |"
# Every round's figure, in round order, to show the spread behind the medians.
echo
echo "rounds, in order:"
for tool in async sync perftest; do
    for size in 2 4096; do
        echo "  $tool lat $size B: $(for f in "$work"/r*_"${tool}"_lat_"$size".client; do
            [[ -e $f ]] && awk '/t_typical/ { getline; printf "%s ", $5; exit }' "$f"; done)"
    done
    echo "  $tool rate 64 B: $(for f in "$work"/r*_"${tool}"_bw_64.client; do
        [[ -e $f ]] && awk -v col="$([[ $tool == perftest ]] && echo 5 || echo 4)" \
            '/MsgRate/ { getline; printf "%s ", $col; exit }' "$f"; done)"
done
