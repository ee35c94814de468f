# shellcheck shell=sh
# `cargo xtask bench http`, in dom0: the load points against one server.
# Sourced after dom0's lib.sh; called as `http_points NAME IP REQUESTS`.
# Each point prints "[xl bench] NAME HTTPTOOL load conns=C keepalive=K ...".
if [ ! -d /sys/class/net/xenbr0 ]; then
    ip link add xenbr0 type bridge
    ip addr add 192.0.2.1/24 dev xenbr0
    ip link set xenbr0 up
fi
http_points() { # NAME IP REQUESTS
    ping -c 2 -W 5 "$2" > /dev/null 2>&1; echo "[xl check] $1-ping-rc $?"
    for ka in 1 0; do
        for c in 1 16 64 256; do
            httptool load "$2" 80 /bench $c "$3" $ka 2>&1 | sed "s/^/[xl bench] $1 /"
        done
    done
}
# The guest's status page (memory, connection counters) after the load.
http_memory() { # NAME IP
    timeout 15 wget -q -O "/tmp/page-$1" "http://$2/" && sed "s/^/[xl page] $1 /" "/tmp/page-$1"
}
