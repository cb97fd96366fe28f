#!/usr/bin/env bash
# The first-error check of a compile-fail case: the first line of the
# compiler's output that reports an error must match REGEX, so that the rule
# is named where the reader looks first, not in a note further down.
#   first_error.sh REGEX COMPILER ARGS...
set -u
regex=$1
shift
if out=$("$@" 2>&1); then
    echo "FAIL: compiled, but the case breaks a rule"
    exit 1
fi
first=$(grep -m1 -E 'error:' <<<"$out" || true)
if grep -qE -- "$regex" <<<"$first"; then
    echo "first error line names the rule: $first"
    exit 0
fi
echo "$out" | head -n 40
echo "FAIL: the first error line does not match: $regex"
echo "first error line: $first"
exit 1
