#!/usr/bin/env bash
# SEND latency over a connection set up through the RDMA CM against one set
# up over TCP, for rcq (rcq_lat --cm / rcq_lat) and perftest (ib_send_lat -R /
# ib_send_lat), A/B/C/D in each round, all in one boot of the Soft-RoCE VM
# (or on the host's device), plus rcq's connection set-up time both ways.
#
#   bench/cm_compare.sh [--build DIR] [--rounds N] [--out FILE]
#
# --build  a build folder holding bench/rcq_lat (default: $RCQ_BUILD_DIR, else <repo>/build)
# --rounds rounds of the four runs (default 5)
# --out    the markdown table (default bench/results/cm_latest.md)
# Each run: -s 2 -n 1000, server and client on the same device; figure:
# t_typical (median half round trip), median over the rounds.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

inner() { # BUILD WORK ROUNDS
    local build=$1 work=$2 rounds=$3 ip=${RCQ_IP:-127.0.0.1} dev=() port=23000 r
    [[ -n ${RCQ_DEVICE:-} ]] && dev+=(-d "$RCQ_DEVICE")
    [[ -n ${RCQ_GID_INDEX:-} ]] && dev+=(-x "$RCQ_GID_INDEX")
    ulimit -l unlimited 2>/dev/null || true
    mkdir -p "$work/raw"
    run() { # NAME ARGS... : server, then (once it listens) the client with the IP
        local name=$1
        shift
        port=$((port + 1))
        timeout -k 5 120 "$@" -p "$port" >"$work/raw/$name.server" 2>&1 &
        local pid=$!
        # Neither perftest's -R client nor its TCP client waits for a late
        # server (the -R one gets REJECTED and gives up): start late, and
        # start again while the server is still waiting.
        sleep 2
        local attempt
        for attempt in 1 2 3 4 5 6 7 8 9 10; do
            timeout -k 5 120 "$@" -p "$port" "$ip" >"$work/raw/$name.client" 2>&1 && break
            kill -0 "$pid" 2>/dev/null || break
            echo "$name: client attempt $attempt failed; again" >&2
            sleep 1
        done
        wait "$pid" || echo "$name: server failed" >&2
    }
    for ((r = 1; r <= rounds; r++)); do
        echo "round $r of $rounds" >&2
        run "r${r}_rcq_tcp" "$build/bench/rcq_lat" "${dev[@]}" -s 2 -n 1000
        run "r${r}_rcq_cm" "$build/bench/rcq_lat" --cm "${dev[@]}" -s 2 -n 1000
        run "r${r}_perftest_tcp" ib_send_lat "${dev[@]}" -s 2 -n 1000
        run "r${r}_perftest_cm" ib_send_lat -R "${dev[@]}" -s 2 -n 1000
    done
}

if [[ ${1:-} == --inner ]]; then
    shift
    inner "$@"
    exit 0
fi

build=${RCQ_BUILD_DIR:-$repo/build}
rounds=5
out=$here/results/cm_latest.md
while (($#)); do
    case $1 in
    --build) build=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "cm_compare: unknown argument $1" >&2; exit 2 ;;
    esac
done
build=$(cd "$build" && pwd)
[[ -x $build/bench/rcq_lat ]] || { echo "cm_compare: no $build/bench/rcq_lat; build the rcq_lat target" >&2; exit 1; }
command -v ib_send_lat >/dev/null || apt-get install -y -q --no-install-recommends perftest >/dev/null
work=$(mktemp -d "$build/cm_compare.XXXXXX")
if "$repo/tests/softroce/run" --host-has-device; then
    bash "$here/cm_compare.sh" --inner "$build" "$work" "$rounds"
else
    "$repo/tests/softroce/run" --timeout 1800 --share "$build" --share "$repo" -- \
        bash "$here/cm_compare.sh" --inner "$build" "$work" "$rounds"
fi

# t_typical: the 5th column of the row under perftest's (and rcq_lat's) header.
figure() { awk '/t_typical/ {getline; print $5; exit}' "$1"; }
median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
column() { # KIND: the figure of each round, client side
    local r
    for ((r = 1; r <= rounds; r++)); do figure "$work/raw/r${r}_$1.client"; done
}
setup() { # KIND: rcq's connection set-up times, client side
    local r
    for ((r = 1; r <= rounds; r++)); do
        sed -n 's/^ Connection set-up: \([0-9.]*\) ms.*/\1/p' "$work/raw/r${r}_$1.client"
    done
}
mkdir -p "$(dirname "$out")"
{
    echo "| 2 B SEND, t_typical [us] | rcq over TCP | rcq over RDMA CM | ib_send_lat | ib_send_lat -R |"
    echo "| --- | --- | --- | --- | --- |"
    echo "| median of $rounds rounds | $(column rcq_tcp | median) | $(column rcq_cm | median) | $(column perftest_tcp | median) | $(column perftest_cm | median) |"
    echo "| each round | $(column rcq_tcp | paste -sd' ') | $(column rcq_cm | paste -sd' ') | $(column perftest_tcp | paste -sd' ') | $(column perftest_cm | paste -sd' ') |"
    echo
    echo "| rcq connection set-up (client's constructor) [ms] | over TCP | over RDMA CM |"
    echo "| --- | --- | --- |"
    echo "| median of $rounds rounds | $(setup rcq_tcp | median) | $(setup rcq_cm | median) |"
    echo "| each round | $(setup rcq_tcp | paste -sd' ') | $(setup rcq_cm | paste -sd' ') |"
} >"$out"
for f in "$work"/raw/*; do echo "== ${f##*/}"; cat "$f"; done >"${out%.md}.log"
cat "$out"
rm -rf "$work"
