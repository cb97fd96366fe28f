#!/usr/bin/env bash
# Compile time of a program written with rcq against the same program written
# with raw verbs: bench/compile_time/rcq_server.cpp (a full rcq::connection
# and the server flow, including the two rcq headers it uses) and
# bench/compile_time/raw_server.cpp. The rcq server is compiled four ways:
# header-only and with RCQ_SEPARATE_COMPILATION, each as it is and with the
# umbrella <rcq/rcq.hpp> forced in first (-include, the form the server had
# before it included only what it uses). In separate-compilation mode the
# program has one more source file, examples/rcq_src.cpp (which includes
# <rcq/impl/src.hpp>), compiled once; its cost is given too. Each translation unit is compiled to an object file
# three times; the best wall time and the best user CPU time count (user CPU
# is the steadier figure on a shared machine).
#
#   bench/compile_time.sh [--out FILE] [--instructions]
#
# --instructions also counts the instructions the compiler executes (valgrind's
# callgrind over the driver and the compiler and assembler it starts) for the
# raw server and the two forms of the rcq server that include their own
# headers: unlike the times, these counts do not move with the host's load or
# speed, so their ratios compare runs on different machines. It adds about
# six minutes on 2 cores (four of them for the header-only server).
#
# CXX (default c++) and CXXFLAGS (default -std=c++20 -O2) are taken from the
# environment. Prints the figures and writes them into FILE (default
# bench/results/latest.md), replacing an earlier compile-time section there.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
out=$here/results/latest.md
count=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --out) out=$2; shift 2 ;;
        --instructions) count=1; shift ;;
        *) echo "usage: bench/compile_time.sh [--out FILE] [--instructions]" >&2; exit 2 ;;
    esac
done
cxx=${CXX:-c++}
read -ra flags <<<"${CXXFLAGS:--std=c++20 -O2}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# GNU time (Debian's `time` package) reports wall and user CPU time;
# valgrind counts instructions.
need=()
[[ -x /usr/bin/time ]] || need+=(time)
[[ $count -eq 0 ]] || command -v valgrind >/dev/null || need+=(valgrind)
if [[ ${#need[@]} -gt 0 ]]; then
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo=sudo
    $sudo apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi

# best_of_3 SOURCE [EXTRA FLAGS...]: "WALL USER", the shortest of three wall
# times and of three user CPU times, in seconds. GNU time writes both.
best_of_3() {
    local src=$1 best_wall= best_user= i wall user
    shift
    for i in 1 2 3; do
        /usr/bin/time -f '%e %U' -o "$tmp/time" \
            timeout 600 "$cxx" "${flags[@]}" "$@" -I"$repo/include" -c "$src" -o "$tmp/out.o"
        read -r wall user <"$tmp/time"
        if [[ -z $best_wall ]] || awk -v t="$wall" -v b="$best_wall" 'BEGIN { exit !(t < b) }'; then
            best_wall=$wall
        fi
        if [[ -z $best_user ]] || awk -v t="$user" -v b="$best_user" 'BEGIN { exit !(t < b) }'; then
            best_user=$user
        fi
    done
    echo "$best_wall $best_user"
}

# instructions SOURCE [EXTRA FLAGS...]: millions of instructions executed to
# compile SOURCE, summed over the driver and every process it starts.
instructions() {
    local src=$1
    shift
    rm -f "$tmp"/cg.*
    valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$tmp/cg.%p" \
        "$cxx" "${flags[@]}" "$@" -I"$repo/include" -c "$src" -o "$tmp/out.o" >/dev/null 2>&1
    awk '/^summary:/ { n += $2 } END { printf "%.0f", n / 1e6 }' "$tmp"/cg.*
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }

server=$here/compile_time/rcq_server.cpp
sep=-DRCQ_SEPARATE_COMPILATION
read -r raw_wall raw_user < <(best_of_3 "$here/compile_time/raw_server.cpp")
read -r own_wall own_user < <(best_of_3 "$server")
read -r all_wall all_user < <(best_of_3 "$server" -include rcq/rcq.hpp)
read -r own_sep_wall own_sep_user < <(best_of_3 "$server" "$sep")
read -r all_sep_wall all_sep_user < <(best_of_3 "$server" "$sep" -include rcq/rcq.hpp)
read -r src_wall src_user < <(best_of_3 "$repo/examples/rcq_src.cpp" "$sep")
version=$("$cxx" --version | head -n 1)

# row LABEL WALL USER: one line of the printed table.
row() {
    printf '%-58s %6s %6s %9s\n' "$1" "$2" "$3" "$(ratio "$2" "$raw_wall")x"
}
printf '%-58s %6s %6s %9s\n' "translation unit" "wall" "user" "wall/raw"
row "raw verbs (raw_server.cpp)" "$raw_wall" "$raw_user"
row "rcq, header-only, own includes (rcq_server.cpp)" "$own_wall" "$own_user"
row "rcq, header-only, with <rcq/rcq.hpp>" "$all_wall" "$all_user"
row "rcq, RCQ_SEPARATE_COMPILATION, own includes" "$own_sep_wall" "$own_sep_user"
row "rcq, RCQ_SEPARATE_COMPILATION, with <rcq/rcq.hpp>" "$all_sep_wall" "$all_sep_user"
row "  + rcq_src.cpp (<rcq/impl/src.hpp>), once per program" "$src_wall" "$src_user"
echo "($version, ${flags[*]}, best of 3; seconds)"
if [[ $count -eq 1 ]]; then
    raw_ins=$(instructions "$here/compile_time/raw_server.cpp")
    own_ins=$(instructions "$server")
    own_sep_ins=$(instructions "$server" "$sep")
    printf '%-58s %12s %9s\n' "instructions (millions)" "" "/raw"
    printf '%-58s %12s %9s\n' "raw verbs" "$raw_ins" "1.0x"
    printf '%-58s %12s %9s\n' "rcq, header-only, own includes" "$own_ins" "$(ratio "$own_ins" "$raw_ins")x"
    printf '%-58s %12s %9s\n' "rcq, RCQ_SEPARATE_COMPILATION, own includes" "$own_sep_ins" "$(ratio "$own_sep_ins" "$raw_ins")x"
fi

# Replace the section between the markers, or append it.
section=$(
    echo "<!-- compile-time: begin -->"
    echo "## Compile time"
    echo
    echo "One translation unit each, compiled to an object file; best of 3 wall and user CPU times,"
    echo "measured by \`bench/compile_time.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC') ($(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1))."
    echo
    echo "| program | wall s | user s | wall / raw | user / raw |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    echo "| raw verbs server (\`compile_time/raw_server.cpp\`) | $raw_wall | $raw_user | 1.0x | 1.0x |"
    echo "| rcq server, header-only, its own includes (\`compile_time/rcq_server.cpp\`) | $own_wall | $own_user | $(ratio "$own_wall" "$raw_wall")x | $(ratio "$own_user" "$raw_user")x |"
    echo "| rcq server, header-only, with \`<rcq/rcq.hpp>\` | $all_wall | $all_user | $(ratio "$all_wall" "$raw_wall")x | $(ratio "$all_user" "$raw_user")x |"
    echo "| rcq server, \`RCQ_SEPARATE_COMPILATION\`, its own includes | $own_sep_wall | $own_sep_user | $(ratio "$own_sep_wall" "$raw_wall")x | $(ratio "$own_sep_user" "$raw_user")x |"
    echo "| rcq server, \`RCQ_SEPARATE_COMPILATION\`, with \`<rcq/rcq.hpp>\` | $all_sep_wall | $all_sep_user | $(ratio "$all_sep_wall" "$raw_wall")x | $(ratio "$all_sep_user" "$raw_user")x |"
    echo "| \`examples/rcq_src.cpp\` (\`<rcq/impl/src.hpp>\`), compiled once per program in that mode | $src_wall | $src_user | | |"
    if [[ $count -eq 1 ]]; then
        echo
        echo "Instructions the compiler executed (valgrind's callgrind, driver, compiler and assembler), which do not vary with the host's load:"
        echo
        echo "| program | millions | / raw |"
        echo "| --- | ---: | ---: |"
        echo "| raw verbs server | $raw_ins | 1.0x |"
        echo "| rcq server, header-only, its own includes | $own_ins | $(ratio "$own_ins" "$raw_ins")x |"
        echo "| rcq server, \`RCQ_SEPARATE_COMPILATION\`, its own includes | $own_sep_ins | $(ratio "$own_sep_ins" "$raw_ins")x |"
    fi
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
