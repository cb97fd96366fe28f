#!/usr/bin/env bash
# Every rcq header, included alone under -std=c++17, must stop at its first
# line with rcq's own message (config.hpp's "rcq needs C++20"), not with the
# errors of the C++20 code after it; first_error.sh checks each one.
# headers_compile_alone is the twin: the same headers compile alone under
# C++20.
#   older_standard.sh COMPILER INCLUDE_DIR [MORE_FLAGS...]
set -u
here=$(cd "$(dirname "$0")" && pwd)
cxx=$1
include=$2
shift 2
flags=()
for f in "$@"; do [[ $f == -std=* ]] || flags+=("$f"); done # ours is -std=c++17
checked=0 failed=0
while IFS= read -r header; do
    name=${header#"$include"/}
    checked=$((checked + 1))
    if ! bash "$here/first_error.sh" 'rcq needs C\+\+20: compile with -std=c\+\+20' \
        "$cxx" -std=c++17 -fsyntax-only -Wfatal-errors -I"$include" "${flags[@]}" \
        -x c++ -include "$name" /dev/null >/dev/null; then
        echo "FAIL: <$name> under -std=c++17 does not stop first at rcq's message"
        failed=$((failed + 1))
    fi
done < <(find "$include/rcq" -name '*.hpp' | sort)
echo "$checked headers checked under -std=c++17, $failed without rcq's message first"
[ "$checked" -gt 0 ] && [ "$failed" -eq 0 ]
