#!/usr/bin/env bash
# Checks that every README code block marked with a line
#   <!-- snippet: PATH -->
# just before it appears, line for line and in one piece, in PATH (relative
# to the repository), so that the README shows code that is compiled (and,
# for the examples, run by the rdma test). A whole file is one such piece.
#   readme_examples.sh REPO_ROOT
set -euo pipefail
root=$1
readme=$root/README.md
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0 checked=0

# Split the README's marked blocks into files: tmp/N.path and tmp/N.code.
awk -v dir="$tmp" '
    /^<!-- snippet: .* -->$/ { path = $3; want = 1; next }
    want && /^```/ { n++; inside = 1; want = 0; print path > (dir "/" n ".path"); printf "" > (dir "/" n ".code"); next }
    inside && /^```$/ { inside = 0; next }
    inside { print > (dir "/" n ".code") }
    { want = 0 }
' "$readme"

for path_file in "$tmp"/*.path; do
    [[ -e $path_file ]] || break
    n=${path_file%.path}
    source=$root/$(cat "$path_file")
    checked=$((checked + 1))
    if [[ ! -f $source ]]; then
        echo "README snippet $(basename "$n") names $(cat "$path_file"), which does not exist"
        status=1
        continue
    fi
    # Is the block a run of consecutive lines of the source?
    if ! awk 'NR == FNR { block[++b] = $0; next }
              { src[++s] = $0 }
              END {
                  for (i = 1; i + b - 1 <= s; i++) {
                      for (j = 1; j <= b && src[i + j - 1] == block[j]; j++) ;
                      if (j > b) exit 0
                  }
                  exit 1
              }' "$n.code" "$source"; then
        echo "README snippet $(basename "$n") is not (or no longer) in $(cat "$path_file"):"
        sed 's/^/    /' "$n.code"
        status=1
    fi
done
if [[ $checked -eq 0 ]]; then echo "no marked snippets found in README.md"; exit 1; fi
[[ $status -eq 0 ]] && echo "README: $checked snippets match their sources"
exit "$status"
