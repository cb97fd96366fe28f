# Sourced by bench/compare.sh and bench/qps_compare.sh: what their A/B runs
# of rcq's programs against perftest's share. The sourcing script sets
# `bench_name` (for its messages) first.

say() { echo "$bench_name: $*" >&2; }
die() {
    say "error: $*"
    exit 1
}

# record_env FILE: the kernel, where it runs (KVM, TCG or the host's own
# device), the device and the CPU, as shell assignments for the report.
record_env() {
    local hypervisor
    if grep -qs kvm-clock /sys/devices/system/clocksource/clocksource0/available_clocksource; then
        hypervisor=KVM
    elif [[ ${RCQ_IN_VM:-} == 1 ]] || grep -qs QEMU /proc/cpuinfo; then
        hypervisor=TCG
    else
        hypervisor="none (host device)"
    fi
    {
        printf 'kernel=%q\n' "$(uname -r)"
        printf 'hypervisor=%q\n' "$hypervisor"
        printf 'device=%q\n' "${RCQ_DEVICE:-(first)}"
        printf 'guest_cpu=%q\n' "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
    } >"$1"
}

# pair NAME SERVER_CMD... -- CLIENT_CMD...: one run, server then client, on
# the next port after the caller's `port`; the client gets -p and the
# caller's `ip` appended, the server -p. Outputs go to the caller's
# $work/raw/NAME.{server,client}, both exit statuses to $work/status.
pair() {
    local name=$1
    shift
    local server=() client=()
    while [[ $1 != -- ]]; do server+=("$1"); shift; done
    shift
    client=("$@")
    port=$((port + 1))
    timeout -k 5 120 "${server[@]}" -p "$port" >"$work/raw/$name.server" 2>&1 &
    local server_pid=$! waited=0
    # perftest's client gives up at once if nobody listens yet.
    until ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; do
        sleep 0.05
        waited=$((waited + 1))
        if ((waited > 400)) || ! kill -0 "$server_pid" 2>/dev/null; then break; fi
    done
    local client_status=0 server_status=0
    timeout -k 5 120 "${client[@]}" -p "$port" "$ip" >"$work/raw/$name.client" 2>&1 ||
        client_status=$?
    wait "$server_pid" || server_status=$?
    echo "$name client=$client_status server=$server_status" >>"$work/status"
    echo "  $name: client $client_status, server $server_status" >&2
}

# install_missing PROGRAM=PACKAGE...: installs with apt the package of each
# program not on the PATH (as root; otherwise says what to install).
install_missing() {
    local missing=() p
    for p in "$@"; do command -v "${p%%=*}" >/dev/null || missing+=("${p#*=}"); done
    ((${#missing[@]})) || return 0
    ((EUID == 0)) || die "missing ${missing[*]}: apt-get install ${missing[*]}"
    say "installing ${missing[*]}"
    timeout 900 apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
        timeout 900 apt-get update >/dev/null 2>&1
        timeout 900 apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
    } || die "apt-get install ${missing[*]} failed"
}

# median of the values given as arguments
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
