#!/usr/bin/env bash
# C++ cannot forbid using a handle after it was moved from (a QP after
# std::move(q).to_rtr(...), a send_queue after release()): clang-tidy's
# bugprone-use-after-move finds it. This runs that check over every
# translation unit of the examples, tests and benchmarks in the build's
# compile_commands.json, after showing on a control that it reports a use
# after move. A deliberate one in a test is marked
# NOLINT(bugprone-use-after-move) with the reason.
#   use_after_move.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
root=${1:?usage: use_after_move.sh SOURCE_DIR BUILD_DIR}
build=${2:?usage: use_after_move.sh SOURCE_DIR BUILD_DIR}

tidy=$(command -v clang-tidy || command -v clang-tidy-14 || true)
if [[ -z $tidy ]]; then
    echo "use-after-move check skipped: clang-tidy is not installed (apt-get install clang-tidy)"
    exit 77
fi
db=$build/compile_commands.json
if [[ ! -f $db ]]; then
    echo "use-after-move: FAIL: $db is missing (configure with CMAKE_EXPORT_COMPILE_COMMANDS=ON)"
    exit 1
fi
checks=(-checks='-*,bugprone-use-after-move' --warnings-as-errors='bugprone-use-after-move'
        --extra-arg=-Wno-unknown-warning-option --quiet)

# The control must be reported.
control=$root/tests/lint/use_after_move_control.cpp
out=$("$tidy" "${checks[@]}" "$control" -- -std=c++20 -I"$root/include" 2>&1 || true)
if ! grep -q "use_after_move_control.cpp:11:.*'q' used after it was moved.*bugprone-use-after-move" <<<"$out"; then
    echo "$out"
    echo "use-after-move: FAIL: clang-tidy did not report the control's use after move"
    exit 1
fi
echo "control: reported as it must be"

mapfile -t files < <(grep -o '"file": *"[^"]*"' "$db" | sed 's/.*"\([^"]*\)"$/\1/' |
                     grep -E "^$root/(examples|tests|bench)/" | sort -u)
if ((${#files[@]} == 0)); then
    echo "use-after-move: FAIL: no examples, tests or benchmarks in $db"
    exit 1
fi
echo "checking ${#files[@]} translation units"
status=0
printf '%s\n' "${files[@]}" |
    xargs -P "$(nproc)" -n 1 "$tidy" -p "$build" "${checks[@]}" || status=$?
if ((status != 0)); then
    echo "use-after-move: FAIL: see the reports above"
    exit 1
fi
echo "use-after-move: PASS: ${#files[@]} translation units, no use after move"
