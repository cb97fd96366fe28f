#!/usr/bin/env bash
# launch_env.sh (installed as rcq-launch-env) - runs two programs that use
# rcq::handshake::env and relays their handshake lines (the protocol is in
# include/rcq/handshake/env.hpp).
#
#   launch_env.sh [-t SECONDS] [-v VARIABLE] A_PROGRAM [ARGS...] -- B_PROGRAM [ARGS...]
#
#   e.g. launch_env.sh ./rdma_server --handshake=env -- ./rdma_client --handshake=env
#
# A starts first, with VARIABLE (default RCQ_PEER_ENDPOINT) removed from its
# environment, and prints its endpoint line. B then starts with VARIABLE set
# to that line and prints its own, which goes to A's stdin; after that, each
# side's go-ahead line "rcq-go" goes to the other's stdin. Every line either
# program prints on stdout is shown here as "[A] ..." or "[B] ..."; only the
# handshake lines (starting with "rcq" and a digit, or "rcq-go") are
# relayed. Their stderr passes through.
#
# Each program runs for at most SECONDS (default 60); when one fails, the
# other is stopped, and each failure is reported on stderr. Exit status: 0
# when both succeed, else the status of the first failure noticed (124: a
# timeout), or 1 for the launcher's own errors.
# Needs bash 5.1 (wait -n -p) and coreutils' timeout.
set -euo pipefail

timeout_s=60
var=RCQ_PEER_ENDPOINT
usage() {
    echo "usage: $0 [-t SECONDS] [-v VARIABLE] A_PROGRAM [ARGS...] -- B_PROGRAM [ARGS...]" >&2
    exit 2
}
while getopts t:v:h opt; do
    case $opt in
        t) timeout_s=$OPTARG ;;
        v) var=$OPTARG ;;
        *) usage ;;
    esac
done
shift $((OPTIND - 1))
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || usage
a=()
while (($#)) && [[ $1 != -- ]]; do a+=("$1"); shift; done
((${#a[@]} && $# >= 2)) || usage
shift
b=("$@")

work=$(mktemp -d "${TMPDIR:-/tmp}/launch_env.XXXXXX")
pids=()
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
fail() { echo "launch_env: $*" >&2; exit "${status:-1}"; }

mkfifo "$work/a.in" "$work/a.out" "$work/b.in" "$work/b.out"

# A, reading fd 3's lines and writing into fd 4. Opening a FIFO waits for its
# other end, so the opens below pair up with A's redirections, in order.
timeout -k 5 "$timeout_s" env -u "$var" "${a[@]}" <"$work/a.in" >"$work/a.out" &
pid_a=$!
pids+=("$pid_a")
exec 3>"$work/a.in" 4<"$work/a.out"

# A's endpoint line, skipping (and showing) whatever A prints before it.
# bash reads a pipe one byte at a time, so nothing after the line is lost.
ends=$((SECONDS + timeout_s))
while :; do
    left=$((ends - SECONDS))
    ((left > 0)) || fail "A printed no endpoint line within ${timeout_s} s"
    rc=0
    IFS= read -r -t "$left" -u 4 line || rc=$?
    if ((rc > 128)); then fail "A printed no endpoint line within ${timeout_s} s"; fi
    if ((rc != 0)); then
        status=0
        wait "$pid_a" || status=$?
        ((status != 0)) || status=1
        fail "A ended (status $status) before printing its endpoint line"
    fi
    printf '[A] %s\n' "$line"
    [[ $line =~ ^rcq[0-9]+\  ]] && break
done

# B, with A's line in its environment and without A's descriptors.
timeout -k 5 "$timeout_s" env "$var=$line" "${b[@]}" <"$work/b.in" >"$work/b.out" 3>&- 4<&- &
pid_b=$!
pids+=("$pid_b")
exec 5>"$work/b.in" 6<"$work/b.out"

# relay NAME FROM_FD TO_FD: shows each line, copies the handshake ones on.
# Ends when FROM_FD reaches end of file, that is, when its program is gone;
# it then closes TO_FD, so the other program sees its input end.
relay() {
    trap '' PIPE # a vanished reader is a failed printf, not a dead relay
    local l
    while IFS= read -r -u "$2" l; do
        printf '[%s] %s\n' "$1" "$l"
        if [[ $l =~ ^rcq[0-9]+\  || $l == rcq-go || $l =~ ^rcq-go\ auth= ]]; then { printf '%s\n' "$l" >&"$3"; } 2>/dev/null || true; fi
    done
}
relay A 4 5 3>&- 6<&- &
relays=($!)
relay B 6 3 4<&- 5>&- &
relays+=($!)
pids+=("${relays[@]}")
exec 3>&- 4<&- 5>&- 6<&-

# Wait for both; the first failure stops the other side. Every failure is
# reported: after one side dies, the other often fails too (its input ends)
# and may be noticed first.
status=0
stopped=
running=("$pid_a" "$pid_b")
while ((${#running[@]})); do
    rc=0 done_pid=
    wait -n -p done_pid "${running[@]}" || rc=$?
    [[ -n $done_pid ]] || break
    [[ $done_pid == "$pid_a" ]] && who=A || who=B
    still=()
    for p in "${running[@]}"; do [[ $p == "$done_pid" ]] || still+=("$p"); done
    running=("${still[@]}")
    ((rc != 0)) || continue
    if [[ $done_pid == "$stopped" ]] && ((rc > 128)); then
        echo "launch_env: $who stopped" >&2
        continue
    fi
    ((rc == 124)) && echo "launch_env: $who timed out after ${timeout_s} s" >&2 ||
        echo "launch_env: $who failed with status $rc" >&2
    if ((status == 0)); then
        status=$rc
        for p in "${running[@]}"; do stopped=$p; kill "$p" 2>/dev/null || true; done
    fi
done

# Let the relays show what is left in the pipes, for at most two seconds.
for p in "${relays[@]}"; do
    for _ in {1..20}; do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
done
exit "$status"
