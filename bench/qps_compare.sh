#!/usr/bin/env bash
# Message rate and bandwidth against the number of QPs: rcq_bw -q N against
# perftest's ib_send_bw -q N and ib_write_bw -q N, on the same RDMA device in
# the same run.
#
#   bench/qps_compare.sh [--build DIR] [--rounds N] [--out DIR]
#
# --build  a build folder holding bench/rcq_bw (built from this source tree);
#          default: $RCQ_BUILD_DIR, else <repo>/build
# --rounds how many times each comparison runs, rcq then perftest, A/B/A/B
#          (default 3; about two minutes of VM time per round under TCG)
# --out    where qps_latest.md, qps.png and qps_latest.log go
#          (default bench/results)
#
# On a host with an ACTIVE RDMA device the programs run right here;
# otherwise everything runs inside ONE boot of the Soft-RoCE VM
# (tests/softroce/run), server and client on the same device. perftest and
# gnuplot are installed with apt when missing. Every program runs under
# `timeout`.
#
# For N in $QPS: SEND and RDMA WRITE, 64 B (message rate) and 64 KiB
# (bandwidth), -Q 16, tx depth 128 per QP on both. -n is per QP on both
# tools, so it is the total divided by N: every N moves the same bytes.
# Figure: the client's BW average and message rate, median over the rounds.
set -euo pipefail

QPS=(1 8 64)
SIZES=(64 65536)
TOTAL_64=8192     # messages per run, over all QPs
TOTAL_65536=1024
CQ_MOD=16

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
softroce=$repo/tests/softroce/run

bench_name=qps_compare
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

    local port=23000 # pair() takes the next one for each run
    local r size op q n total
    for ((r = 1; r <= rounds; r++)); do
        echo "round $r of $rounds" >&2
        for q in "${QPS[@]}"; do
            for size in "${SIZES[@]}"; do
                total=TOTAL_$size
                n=$((${!total} / q))
                for op in send write; do
                    local common=("${dev[@]}" -q "$q" -s "$size" -n "$n" -Q "$CQ_MOD")
                    pair "r${r}_rcq_${op}_${size}_q$q" "$build/bench/rcq_bw" --op "$op" "${common[@]}" \
                        -- "$build/bench/rcq_bw" --op "$op" "${common[@]}"
                    pair "r${r}_perftest_${op}_${size}_q$q" "ib_${op}_bw" "${common[@]}" \
                        -- "ib_${op}_bw" "${common[@]}"
                done
            done
        done
    done
}

if [[ ${1:-} == --inner ]]; then
    shift
    inner "$@"
    exit 0
fi

# -------------------------------------------------------------- host ------
build=${RCQ_BUILD_DIR:-$repo/build}
rounds=3
out=$here/results
while (($#)); do
    case $1 in
    --build) build=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h | --help) sed -n '2,25s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
    esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds wants a positive number"
build=$(cd "$build" 2>/dev/null && pwd) || die "no build folder $build"
[[ -x $build/bench/rcq_bw ]] || die "$build/bench/rcq_bw is missing: build it first, e.g.
  cmake -S $repo -B $build -DCMAKE_BUILD_TYPE=Release && cmake --build $build --target rcq_bw"

install_missing ib_send_bw=perftest gnuplot=gnuplot-nox

work=$(mktemp -d "${TMPDIR:-/tmp}/rcq-qps.XXXXXX")
trap 'rm -rf "$work"' EXIT
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date +%s)
if "$softroce" --host-has-device; then
    say "using the host's RDMA device"
    RCQ_IN_VM=0 inner "$build" "$work" "$rounds"
else
    say "no RDMA device on the host: one Soft-RoCE VM boot for everything"
    "$softroce" --timeout 1800 --share "$build" --share "$work" -- \
        bash "$here/qps_compare.sh" --inner "$build" "$work" "$rounds"
fi
elapsed=$(($(date +%s) - started))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------- report -----
mkdir -p "$out"
# Every client's output, for the record, less perftest's two lines per QP of
# addresses (256 lines a run with 64 QPs).
for f in "$work"/raw/*.client; do
    echo "==== $(basename "$f" .client)"
    grep -v -E '^ (local|remote) address: LID |^ GID: ' "$f"
    if [[ -s ${f%.client}.server ]] && grep -v 'client=0 server=0' "$work/status" | grep -q "^$(basename "$f" .client) "; then
        echo "---- its server"
        cat "${f%.client}.server"
    fi
done >"$out/qps_latest.log"
# perftest's server (the receiver of ib_send_bw) measures the CPU's clock
# rate before it reports, and gives up ("Can't produce a report") when the
# samples scatter, as they may on a loaded, emulated machine. The client's
# figure is its own, so such a run counts; it is listed under the table.
server_notes=()
failed=0
while read -r name client server; do
    [[ $client == client=0 && $server == server=0 ]] && continue
    if [[ $name == *_perftest_* && $client == client=0 ]] &&
        grep -q "Can't produce a report" "$work/raw/$name.server"; then
        server_notes+=("$name")
        continue
    fi
    echo "$name $client $server"
    failed=1
done <"$work/status"
if ((failed)); then
    trap - EXIT
    die "some runs failed (above); their output is in $out/qps_latest.log and $work/raw"
fi

# value FILE TOOL KIND: from one client output, the BW average (bw, MB/s)
# or the message rate (rate, thousands of messages per second). perftest
# prints BW peak before the average, rcq does not.
value() {
    awk -v tool="$2" -v kind="$3" '
        /#bytes/ { header = 1; next }
        header && NF >= 4 {
            col = (tool == "perftest" ? 4 : 3) + (kind == "rate")
            if (kind == "rate") printf "%.1f\n", $col * 1000
            else print $col
            exit
        }' "$1"
}


figure() { # TOOL OP SIZE Q KIND
    local vals=() r
    for ((r = 1; r <= rounds; r++)); do
        vals+=("$(value "$work/raw/r${r}_$1_$2_$3_q$4.client" "$1" "$5")")
    done
    median "${vals[@]}"
}
# "yes" when the figures of both tools over all rounds differ by more than 2x.
unsteady() { # OP SIZE Q KIND
    local vals=() r t
    for t in rcq perftest; do
        for ((r = 1; r <= rounds; r++)); do vals+=("$(value "$work/raw/r${r}_${t}_$1_$2_q$3.client" "$t" "$4")"); done
    done
    printf '%s\n' "${vals[@]}" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print (hi > 2 * lo ? "yes" : "no") }'
}
rounds_of() { # TOOL OP SIZE Q KIND: each round's figure
    local vals=() r
    for ((r = 1; r <= rounds; r++)); do vals+=("$(value "$work/raw/r${r}_$1_$2_$3_q$4.client" "$1" "$5")"); done
    local IFS=/
    echo "${vals[*]}"
}

source "$work/env" 2>/dev/null || true
md=$out/qps_latest.md
plot_data=$work/qps.dat
any_unsteady=0
{
    echo "# rcq vs perftest against the number of QPs"
    echo
    echo "Generated by \`bench/qps_compare.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), $rounds rounds run A/B/A/B"
    echo "(rcq, then perftest, for each comparison), ${elapsed} s in all."
    echo
    echo "| | |"
    echo "| --- | --- |"
    echo "| host CPU | $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $(nproc) cores |"
    echo "| host load average (1, 5, 15 min) | before $load_before, after $load_after |"
    echo "| RDMA device | ${device:-?} (Soft-RoCE rxe unless a host device was found) |"
    echo "| kernel running the test | ${kernel:-?} |"
    echo "| virtualisation | ${hypervisor:-?} |"
    echo "| perftest | $(dpkg-query -W -f '${Version}' perftest 2>/dev/null || echo '?') |"
    echo "| rcq | $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$repo" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)') |"
    echo
    echo "Each run moves the same messages in all, spread over N QPs: $TOTAL_64 of 64 B, or $TOTAL_65536"
    echo "of 64 KiB (-n is per QP: the total / N). -Q $CQ_MOD, tx depth 128 per QP, one CQ for all"
    echo "the QPs on each side (perftest's, and rcq::resources'). rcq: \`rcq_bw -q N --op send|write\`;"
    echo "perftest: \`ib_send_bw -q N\`, \`ib_write_bw -q N\` (same -s, -n, -Q, -d, -x). Client's figures,"
    echo "median over the rounds (each round's in the last columns)."
    echo
    echo "| test | bytes | QPs | rcq | perftest | rcq/perftest | rcq rounds | perftest rounds |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"
    for size in "${SIZES[@]}"; do
        if ((size == 64)); then kind=rate; unit="k msg/s"; else kind=bw; unit="MB/s"; fi
        for op in send write; do
            for q in "${QPS[@]}"; do
                a=$(figure rcq "$op" "$size" "$q" "$kind")
                b=$(figure perftest "$op" "$size" "$q" "$kind")
                ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }')
                if [[ $(unsteady "$op" "$size" "$q" "$kind") == yes ]]; then
                    ratio="$ratio (*)"
                    any_unsteady=1
                fi
                echo "| ${op}, $unit | $size | $q | $a | $b | $ratio | $(rounds_of rcq "$op" "$size" "$q" "$kind") | $(rounds_of perftest "$op" "$size" "$q" "$kind") |"
                echo "$op $size $q $a $b" >>"$plot_data"
            done
        done
    done
    echo
    if ((any_unsteady)); then
        echo "(*) The runs of this row, both tools together, disagree by more than 2x (see the round"
        echo "columns and qps_latest.log): the ratio of the medians says little there."
        echo
    fi
    if ((${#server_notes[@]})); then
        echo "perftest's server could not produce its own report in: ${server_notes[*]} (its clock"
        echo "rate samples scattered: \"Correlation coefficient r^2 < 0.9\"); the client's figure, used here,"
        echo "was printed as usual (see qps_latest.log)."
        echo
    fi
    echo "MB = 2^20 bytes, as perftest counts; k msg/s = messages per second / 1000. Ratios above 1"
    echo "favour rcq. Soft-RoCE is a software device: these figures measure the whole stack in a"
    echo "VM, not NIC hardware."
    echo
    echo "![message rate and bandwidth against QPs](qps.png)"
} >"$md"

gnuplot_script=$work/qps.gp
{
    if gnuplot -e 'set terminal' 2>&1 | grep -q pngcairo; then
        echo "set terminal pngcairo size 1100,480 font 'sans,10'"
    else
        echo "set terminal png size 1100,480"
    fi
    echo "set output '$out/qps.png'"
    echo "set multiplot layout 1,2 title 'rcq vs perftest against the number of QPs, ${device:-rxe0}, ${hypervisor:-?} (median of $rounds rounds)'"
    echo "set logscale x 2"
    echo "set xtics (1, 8, 64)"
    echo "set xrange [0.8:80]"
    echo "set xlabel 'QPs'"
    echo "set grid"
    echo "set key bottom right"
    echo "set yrange [0:*]"
    for size in 64 65536; do
        if ((size == 64)); then
            echo "set title 'message rate, 64 B'"
            echo "set ylabel 'thousand messages per second'"
        else
            echo "set title 'bandwidth, 64 KiB'"
            echo "set ylabel 'MB/s (2^{20} B)'"
        fi
        echo "plot '$plot_data' using (strcol(1) eq 'send' && \$2 == $size ? \$3 : 1/0):4 with linespoints lw 2 pt 7 title 'rcq SEND', \\"
        echo "     '$plot_data' using (strcol(1) eq 'send' && \$2 == $size ? \$3 : 1/0):5 with linespoints lw 2 pt 5 dt 2 title 'ib\\_send\\_bw', \\"
        echo "     '$plot_data' using (strcol(1) eq 'write' && \$2 == $size ? \$3 : 1/0):4 with linespoints lw 2 pt 9 title 'rcq RDMA WRITE', \\"
        echo "     '$plot_data' using (strcol(1) eq 'write' && \$2 == $size ? \$3 : 1/0):5 with linespoints lw 2 pt 11 dt 2 title 'ib\\_write\\_bw'"
    done
    echo "unset multiplot"
} >"$gnuplot_script"
timeout 60 gnuplot "$gnuplot_script" || die "gnuplot failed"

say "wrote $md, $out/qps.png and $out/qps_latest.log"
cat "$md"
