#!/usr/bin/env bash
# Every rcq header, included alone under -std=c++17, must stop at its first
# line with rcq's own message (config.hpp's "rcq needs C++20"), not with the
# errors of the C++20 code after it. headers_compile_alone is the twin: the
# same headers compile alone under C++20.
#   older_standard.sh COMPILER INCLUDE_DIR [MORE_FLAGS...]
set -u
cxx=$1
include=$2
shift 2
flags=()
for f in "$@"; do [[ $f == -std=* ]] || flags+=("$f"); done # ours is -std=c++17
checked=0 failed=0
while IFS= read -r header; do
    name=${header#"$include"/}
    first=$(printf '#include <%s>\n' "$name" |
        "$cxx" -std=c++17 -fsyntax-only -Wfatal-errors -I"$include" "${flags[@]}" -x c++ - 2>&1 |
        grep -m1 'error:')
    checked=$((checked + 1))
    if ! grep -q 'rcq needs C++20: compile with -std=c++20' <<<"$first"; then
        echo "FAIL: <$name> under -std=c++17: ${first:-no error at all}"
        failed=$((failed + 1))
    fi
done < <(find "$include/rcq" -name '*.hpp' | sort)
echo "$checked headers checked under -std=c++17, $failed without rcq's message first"
[ "$checked" -gt 0 ] && [ "$failed" -eq 0 ]
