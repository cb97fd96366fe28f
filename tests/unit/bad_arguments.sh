#!/usr/bin/env bash
# The example programs refuse a command line they cannot use, before they
# open anything (so this needs no RDMA device), with a message that names
# what was wrong, and a failing exit status; none of them waits for anything.
#   bad_arguments.sh HELLO_SERVER HELLO_CLIENT RDMA_SERVER RDMA_CLIENT
set -uo pipefail
hello_server=$1 hello_client=$2 rdma_server=$3 rdma_client=$4
status=0 checked=0

# expect STATUS REGEX PROGRAM ARGS...: PROGRAM exits with STATUS within 10 s
# and its stderr matches REGEX.
expect() {
    local want=$1 regex=$2
    shift 2
    local err got
    err=$(timeout 10 "$@" 2>&1 >/dev/null)
    got=$?
    checked=$((checked + 1))
    if [[ $got -ne $want ]] || ! grep -Eq -- "$regex" <<<"$err"; then
        echo "FAIL: $(basename "$1") ${*:2}: exit $got (want $want), stderr:"
        sed 's/^/    /' <<<"$err"
        status=1
    fi
}

expect 1 "port '70000' is not a number in 1\.\.65535" "$hello_server" 70000
expect 1 "port '0' is not a number in 1\.\.65535" "$hello_server" 0
expect 1 "port '18515x' is not a number" "$hello_server" 18515x
expect 1 "GID index '300' is not a number in 0\.\.255" "$hello_server" 18515 rxe0 300
expect 1 "GID index 'one' is not a number" "$hello_server" 18515 rxe0 one
expect 2 "usage: hello_client <server_ip>" "$hello_client"
expect 1 "port '99999' is not a number in 1\.\.65535" "$hello_client" 192.0.2.1 99999
expect 1 "GID index '-1' is not a number in 0\.\.255" "$hello_client" 192.0.2.1 18515 rxe0 -1
expect 2 "port '70000' is not a number in 1\.\.65535" "$rdma_server" -p 70000
expect 2 "port 'x' is not a number" "$rdma_server" rxe0 x
expect 2 "message size '0' is not a number" "$rdma_server" -s 0
expect 2 "unknown option --bogus" "$rdma_server" --bogus
expect 2 "the server's address is missing" "$rdma_client"
expect 2 "--poll=spin: choose busy, blocking or adaptive" "$rdma_client" 192.0.2.1 --poll=spin
expect 2 "option -p needs a value" "$rdma_client" 192.0.2.1 -p

[[ $status -eq 0 ]] && echo "bad command lines: $checked refused as expected"
exit "$status"
