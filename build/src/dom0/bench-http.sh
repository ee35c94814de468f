# shellcheck shell=sh
# `cargo xtask bench http`, in dom0: the load points against one server.
# Sourced after dom0's lib.sh; called as `http_points NAME IP REQUESTS`.
# Each point prints "[xl bench] NAME HTTPTOOL load conns=C keepalive=K ...".
if [ ! -d /sys/class/net/xenbr0 ]; then
    ip link add xenbr0 type bridge
    ip addr add 192.0.2.1/24 dev xenbr0
    ip link set xenbr0 up
fi
# With MARKS=1 (our guest), an `xl sysrq NAME h` before the first point
# and after each has the guest print its cumulative counters ("net: loop",
# "net: efficiency"), waited for: the host takes their differences.
# Xen's account of the guest's vCPU time over all the points (xl
# vcpu-list: 0.1 s resolution, hence the whole run, with our guest's
# marks) is printed as "[xl bench] NAME VCPU cpu_s=S requests=N": the
# same measure for both guests, whatever else shares the host.
http_points() { # NAME IP REQUESTS [MARKS]
    ping -c 2 -W 5 "$2" > /dev/null 2>&1; echo "[xl check] $1-ping-rc $?"
    _hp_k=1
    http_mark "$1" "${4:-0}" $_hp_k
    _hp_t0=$(vcpu_s "$1")
    _hp_v0=$(vcpu_each "$1")
    for ka in 1 0; do
        for c in 1 16 64 256; do
            httptool load "$2" 80 /bench $c "$3" $ka 2>&1 | sed "s/^/[xl bench] $1 /"
            _hp_k=$((_hp_k + 1))
            http_mark "$1" "${4:-0}" $_hp_k
        done
    done
    _hp_each=$(echo "$_hp_v0 $(vcpu_each "$1")" | awk '{ n = NF / 2; s = ""; for (i = 1; i <= n; i++) s = s (i > 1 ? "," : "") ($(i + n) - $i); print s }')
    echo "[xl bench] $1 VCPU cpu_s=$(awk "BEGIN { print $(vcpu_s "$1") - $_hp_t0 }") requests=$(($3 * 8)) per_vcpu=$_hp_each"
}
vcpu_s() { # NAME: the vCPU seconds Xen counted for all its vCPUs
    xl vcpu-list "$1" | awk 'NR > 1 { s += $6 } END { print s }'
}
vcpu_each() { # NAME: each vCPU's seconds, in order
    xl vcpu-list "$1" | awk 'NR > 1 { printf "%s ", $6 }'
}
http_mark() { # NAME MARKS K
    [ "$2" = 1 ] || return 0
    xl sysrq "$1" h
    wait_console "$1" 'net: loop ' "$3" 30
}
# The guest's status page (memory, connection counters) after the load.
http_memory() { # NAME IP
    timeout 15 wget -q -O "/tmp/page-$1" "http://$2/" && sed "s/^/[xl page] $1 /" "/tmp/page-$1"
}
