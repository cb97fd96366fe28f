#!/usr/bin/env bash
# Compile time of a program written with rcq against the same program written
# with raw verbs: bench/compile_time/rcq_server.cpp (includes <rcq/rcq.hpp>,
# instantiates a full rcq::connection and the server flow) and
# bench/compile_time/raw_server.cpp. Each is compiled to an object file three
# times; the best wall time counts.
#
#   bench/compile_time.sh [--out FILE]
#
# CXX (default c++) and CXXFLAGS (default -std=c++20 -O2) are taken from the
# environment. Prints both figures and writes them into FILE (default
# bench/results/latest.md), replacing an earlier compile-time section there.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
out=$here/results/latest.md
if [[ ${1:-} == --out ]]; then out=$2; fi
cxx=${CXX:-c++}
read -ra flags <<<"${CXXFLAGS:--std=c++20 -O2}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# best_of_3 SOURCE: the shortest of three wall times, in seconds.
best_of_3() {
    local best= i start end t
    for i in 1 2 3; do
        start=$(date +%s.%N)
        timeout 600 "$cxx" "${flags[@]}" -I"$repo/include" -c "$1" -o "$tmp/out.o"
        end=$(date +%s.%N)
        t=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')
        if [[ -z $best ]] || awk -v t="$t" -v b="$best" 'BEGIN { exit !(t < b) }'; then best=$t; fi
    done
    echo "$best"
}

raw=$(best_of_3 "$here/compile_time/raw_server.cpp")
rcq=$(best_of_3 "$here/compile_time/rcq_server.cpp")
ratio=$(awk -v a="$rcq" -v b="$raw" 'BEGIN { printf "%.1f", a / b }')
version=$("$cxx" --version | head -n 1)

printf '%-36s %8s\n' "translation unit" "seconds"
printf '%-36s %8s\n' "raw verbs (raw_server.cpp)" "$raw"
printf '%-36s %8s\n' "rcq (rcq_server.cpp)" "$rcq"
echo "rcq/raw: $ratio x  ($version, ${flags[*]}, best of 3 wall times)"

# Replace the section between the markers, or append it.
section=$(
    echo "<!-- compile-time: begin -->"
    echo "## Compile time"
    echo
    echo "One translation unit each, compiled to an object file; best of 3 wall times,"
    echo "measured by \`bench/compile_time.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') ($(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1))."
    echo
    echo "| program | seconds |"
    echo "| --- | ---: |"
    echo "| raw verbs server (\`compile_time/raw_server.cpp\`) | $raw |"
    echo "| rcq server: \`<rcq/rcq.hpp>\`, full \`rcq::connection\` (\`compile_time/rcq_server.cpp\`) | $rcq |"
    echo "| rcq/raw | ${ratio}x |"
    echo
    echo "Compiler: $version, flags \`${flags[*]}\`."
    echo "<!-- compile-time: end -->"
)
mkdir -p "$(dirname "$out")"
touch "$out"
awk '/<!-- compile-time: begin -->/ { skip = 1 } !skip { print } /<!-- compile-time: end -->/ { skip = 0 }' \
    "$out" >"$tmp/md"
# No blank lines piling up at the end of the file.
sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' "$tmp/md" >"$tmp/md2"
{
    cat "$tmp/md2"
    [[ -s $tmp/md2 ]] && echo
    echo "$section"
} >"$out"
echo "written to $out"
