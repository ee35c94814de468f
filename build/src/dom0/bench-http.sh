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
http_points() { # NAME IP REQUESTS [MARKS]
    ping -c 2 -W 5 "$2" > /dev/null 2>&1; echo "[xl check] $1-ping-rc $?"
    _hp_k=1
    http_mark "$1" "${4:-0}" $_hp_k
    for ka in 1 0; do
        for c in 1 16 64 256; do
            httptool load "$2" 80 /bench $c "$3" $ka 2>&1 | sed "s/^/[xl bench] $1 /"
            _hp_k=$((_hp_k + 1))
            http_mark "$1" "${4:-0}" $_hp_k
        done
    done
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
