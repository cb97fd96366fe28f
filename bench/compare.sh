#!/usr/bin/env bash
# rcq's latency and bandwidth programs side by side with perftest's, on the
# same RDMA device in the same run.
#
#   bench/compare.sh [--build DIR] [--rounds N] [--out DIR]
#
# --build  a build folder holding bench/rcq_lat and bench/rcq_bw (built from
#          this source tree); default: $RCQ_BUILD_DIR, else <repo>/build
# --rounds how many times each comparison runs, rcq then perftest, A/B/A/B
#          (default 5; about 25 s of VM time per round)
# --out    where latest.md, latency.png and latest.log go (default bench/results)
#
# On a host with an ACTIVE RDMA device the programs run right here;
# otherwise everything runs inside ONE boot of the Soft-RoCE VM
# (tests/softroce/run). Server and client run on the same device, the
# client connecting to the device's IP ($RCQ_IP in the VM). perftest
# (ib_send_lat, ib_write_lat, ib_write_bw) and gnuplot are installed with apt
# when missing. Every program runs under `timeout`.
#
# Latency: SEND/RECV and RDMA WRITE ping-pong, -n $LAT_ITERS, sizes $LAT_SIZES;
# figure: t_typical (median half round trip), median over the rounds.
# Bandwidth: RDMA WRITE, -Q 100, sizes $BW_SIZES, plus a post list of 8 at
# 4096 B; figure: BW average, median over the rounds.
set -euo pipefail

LAT_SIZES=(2 64 1024 4096)
LAT_ITERS=1000
BW_SIZES=(4096 65536)
BW_ITERS_4096=5000
BW_ITERS_65536=2000

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
softroce=$repo/tests/softroce/run

bench_name=compare
# shellcheck source=bench/ab_common.sh
source "$here/ab_common.sh"

# ------------------------------------------------------------ inside ------
# inner BUILD WORK ROUNDS: runs every comparison on the device at hand and
# leaves each program's output in WORK/raw/.
inner() {
    local build=$1 work=$2 rounds=$3
    local ip=${RCQ_IP:-127.0.0.1} dev=()
    [[ -n ${RCQ_DEVICE:-} ]] && dev+=(-d "$RCQ_DEVICE")
    [[ -n ${RCQ_GID_INDEX:-} ]] && dev+=(-x "$RCQ_GID_INDEX")
    ulimit -l unlimited 2>/dev/null || true
    mkdir -p "$work/raw"
    record_env "$work/env"

    local port=21000 # pair() takes the next one for each run
    local r size op n
    for ((r = 1; r <= rounds; r++)); do
        echo "round $r of $rounds" >&2
        for size in "${LAT_SIZES[@]}"; do
            for op in send write; do
                local common=("${dev[@]}" -s "$size" -n "$LAT_ITERS")
                pair "r${r}_rcq_${op}_lat_$size" "$build/bench/rcq_lat" --op "$op" "${common[@]}" \
                    -- "$build/bench/rcq_lat" --op "$op" "${common[@]}"
                pair "r${r}_perftest_${op}_lat_$size" "ib_${op}_lat" "${common[@]}" \
                    -- "ib_${op}_lat" "${common[@]}"
            done
        done
        for size in "${BW_SIZES[@]}"; do
            n=BW_ITERS_$size
            local common=("${dev[@]}" -s "$size" -n "${!n}" -Q 100)
            pair "r${r}_rcq_write_bw_$size" "$build/bench/rcq_bw" "${common[@]}" \
                -- "$build/bench/rcq_bw" "${common[@]}"
            pair "r${r}_perftest_write_bw_$size" ib_write_bw "${common[@]}" \
                -- ib_write_bw "${common[@]}"
        done
        local common=("${dev[@]}" -s 4096 -n "$BW_ITERS_4096" -l 8)
        pair "r${r}_rcq_write_bwl8_4096" "$build/bench/rcq_bw" "${common[@]}" \
            -- "$build/bench/rcq_bw" "${common[@]}"
        pair "r${r}_perftest_write_bwl8_4096" ib_write_bw "${common[@]}" \
            -- ib_write_bw "${common[@]}"
    done
}

if [[ ${1:-} == --inner ]]; then
    shift
    inner "$@"
    exit 0
fi

# -------------------------------------------------------------- host ------
build=${RCQ_BUILD_DIR:-$repo/build}
rounds=5
out=$here/results
while (($#)); do
    case $1 in
    --build) build=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,21s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds wants a positive number"
build=$(cd "$build" 2>/dev/null && pwd) || die "no build folder $build"
for p in rcq_lat rcq_bw; do
    [[ -x $build/bench/$p ]] || die "$build/bench/$p is missing: build it first, e.g.
  cmake -S $repo -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release && cmake --build $build --target rcq_lat rcq_bw"
done

install_missing ib_send_lat=perftest gnuplot=gnuplot-nox

work=$(mktemp -d "${TMPDIR:-/tmp}/rcq-compare.XXXXXX")
trap 'rm -rf "$work"' EXIT
started=$(date +%s)
if "$softroce" --host-has-device; then
    say "using the host's RDMA device"
    RCQ_IN_VM=0 inner "$build" "$work" "$rounds"
else
    say "no RDMA device on the host: one Soft-RoCE VM boot for everything"
    "$softroce" --timeout 900 --share "$build" --share "$work" -- \
        bash "$here/compare.sh" --inner "$build" "$work" "$rounds"
fi
elapsed=$(($(date +%s) - started))

# ------------------------------------------------------------- report -----
if grep -v 'client=0 server=0' "$work/status"; then
    die "some runs failed (above); their output is in the log"
fi

# value FILE TOOL KIND: the figure from one client output.
#   latency: t_typical (5th column of the row under the header)
#   bw: BW average (perftest prints BW peak before it, rcq does not)
#   cqe: completions rcq_bw polled (its own line under the table)
value() {
    awk -v tool="$2" -v kind="$3" '
        kind == "cqe" { if (/completions polled:/) { print $3; exit } next }
        /#bytes/ { header = 1; next }
        header && NF >= 4 {
            if (kind == "lat") print $5
            else print (tool == "perftest" ? $4 : $3)
            exit
        }' "$1"
}


figure() { # TOOL TEST SIZE KIND
    local vals=() r f
    for ((r = 1; r <= rounds; r++)); do
        f=$work/raw/r${r}_$1_$2_$3.client
        vals+=("$(value "$f" "$1" "$4")")
    done
    median "${vals[@]}"
}
# "yes" when the figures of both tools over all rounds differ by more than 2x.
unsteady() { # TEST SIZE KIND
    local vals=() r t
    for t in rcq perftest; do
        for ((r = 1; r <= rounds; r++)); do vals+=("$(value "$work/raw/r${r}_${t}_$1_$2.client" "$t" "$3")"); done
    done
    printf '%s\n' "${vals[@]}" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print (hi > 2 * lo ? "yes" : "no") }'
}

rounds_of() { # TOOL TEST SIZE KIND: each round's figure, for the detail column
    local vals=() r
    for ((r = 1; r <= rounds; r++)); do vals+=("$(value "$work/raw/r${r}_$1_$2_$3.client" "$1" "$4")"); done
    local IFS=/
    echo "${vals[*]}"
}

source "$work/env" 2>/dev/null || true
mkdir -p "$out"
md=$out/latest.md
plot_data=$work/latency.dat
any_unsteady=0
{
    echo "# rcq vs perftest"
    echo
    echo "Generated by \`bench/compare.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), $rounds rounds run A/B/A/B"
    echo "(rcq, then perftest, for each comparison), ${elapsed} s in all."
    echo
    echo "| | |"
    echo "| --- | --- |"
    echo "| host CPU | $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(nproc) cores |"
    echo "| host kernel | $(uname -r) |"
    echo "| RDMA device | ${device:-?} (Soft-RoCE rxe unless a host device was found) |"
    echo "| kernel running the test | ${kernel:-?} |"
    echo "| virtualisation | ${hypervisor:-?} |"
    echo "| CPU seen by the test | ${guest_cpu:-?} |"
    echo "| perftest | $(dpkg-query -W -f '${Version}' perftest 2>/dev/null || echo '?') |"
    echo "| rcq | $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$repo" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)') |"
    echo
    echo "## Latency (half round trip, t_typical = median, microseconds)"
    echo
    echo "Ping-pong between two RC QPs on the same device, $LAT_ITERS iterations; each figure is the"
    echo "median over the rounds (each round's figure in the last columns)."
    echo
    echo "| test | bytes | rcq | perftest | rcq/perftest | rcq rounds | perftest rounds |"
    echo "| --- | ---: | ---: | ---: | ---: | --- | --- |"
    for op in send write; do
        for size in "${LAT_SIZES[@]}"; do
            a=$(figure rcq "${op}_lat" "$size" lat)
            b=$(figure perftest "${op}_lat" "$size" lat)
            ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }')
            mark=
            if [[ $(unsteady "${op}_lat" "$size" lat) == yes ]]; then mark=" (*)"; any_unsteady=1; fi
            echo "| ${op} | $size | $a | $b | $ratio$mark | $(rounds_of rcq "${op}_lat" "$size" lat) | $(rounds_of perftest "${op}_lat" "$size" lat) |"
            echo "$op $size $a $b" >>"$plot_data"
        done
    done
    echo
    if ((any_unsteady)); then
        echo "(*) The runs of this row disagree by more than 2x (see the round columns and latest.log):"
        echo "the ratio of the medians says little there."
        echo
    fi
    echo "rcq: \`rcq_lat --op send|write\`; perftest: \`ib_send_lat\`, \`ib_write_lat\` (same -s, -n, -d, -x)."
    echo
    echo "## Bandwidth (RDMA WRITE, BW average, MB/s with MB = 2^20 bytes)"
    echo
    echo "| test | bytes | iterations | rcq | perftest | rcq/perftest | rcq rounds | perftest rounds | rcq completions |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |"
    for size in "${BW_SIZES[@]}"; do
        n=BW_ITERS_$size
        a=$(figure rcq write_bw "$size" bw)
        b=$(figure perftest write_bw "$size" bw)
        ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }')
        echo "| write, -Q 100 | $size | ${!n} | $a | $b | $ratio | $(rounds_of rcq write_bw "$size" bw) | $(rounds_of perftest write_bw "$size" bw) | $(figure rcq write_bw "$size" cqe) |"
    done
    a=$(figure rcq write_bwl8 4096 bw)
    b=$(figure perftest write_bwl8 4096 bw)
    ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }')
    echo "| write, -l 8 | 4096 | $BW_ITERS_4096 | $a | $b | $ratio | $(rounds_of rcq write_bwl8 4096 bw) | $(rounds_of perftest write_bwl8 4096 bw) | $(figure rcq write_bwl8 4096 cqe) |"
    echo
    echo "rcq completions: signaled WRITEs rcq_bw polled (median over the rounds). Like perftest,"
    echo "rcq::send_queue signals exactly one WRITE in -Q (or one per post list)."
    echo
    echo "rcq: \`rcq_bw\`; perftest: \`ib_write_bw\` (same -s, -n, -Q / -l, -d, -x; tx depth 128 on both)."
    echo "Latency ratios below 1 and bandwidth ratios above 1 favour rcq. Soft-RoCE is a software"
    echo "device: these figures measure the whole stack in a VM, not NIC hardware."
    echo
    echo "![latency against message size](latency.png)"
} >"$md"

# Every client's output, for the record.
for f in "$work"/raw/*.client; do
    echo "==== $(basename "$f" .client)"
    cat "$f"
done >"$out/latest.log"

# The plot: t_typical against message size, one line per tool and test.
gnuplot_script=$work/latency.gp
{
    if gnuplot -e 'set terminal' 2>&1 | grep -q pngcairo; then
        echo "set terminal pngcairo size 900,560 font 'sans,10'"
    else
        echo "set terminal png size 900,560"
    fi
    echo "set output '$out/latency.png'"
    echo "set title 'Half round-trip latency (t\\_typical), rcq vs perftest, ${device:-rxe0}, ${hypervisor:-?}'"
    echo "set xlabel 'message size [bytes]'"
    echo "set ylabel 'latency [us]'"
    echo "set logscale x 2"
    echo "set grid"
    echo "set key top left"
    echo "set yrange [0:*]"
    echo "plot '$plot_data' using (strcol(1) eq 'send' ? \$2 : 1/0):3 with linespoints lw 2 pt 7 title 'rcq SEND', \\"
    echo "     '$plot_data' using (strcol(1) eq 'send' ? \$2 : 1/0):4 with linespoints lw 2 pt 5 dt 2 title 'perftest ib\\_send\\_lat', \\"
    echo "     '$plot_data' using (strcol(1) eq 'write' ? \$2 : 1/0):3 with linespoints lw 2 pt 9 title 'rcq RDMA WRITE', \\"
    echo "     '$plot_data' using (strcol(1) eq 'write' ? \$2 : 1/0):4 with linespoints lw 2 pt 11 dt 2 title 'perftest ib\\_write\\_lat'"
} >"$gnuplot_script"
timeout 60 gnuplot "$gnuplot_script" || die "gnuplot failed"

say "wrote $md, $out/latency.png and $out/latest.log"
cat "$md"
