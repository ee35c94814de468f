#!/bin/sh
# The Linux DomU of `bench net` (build/src/netbench.rs): netfront up on
# ${bench_ip}/24 (kernel command line), then `nettool serve` in front.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
while read -r m; do insmod "/$m.ko" || echo "linux-net: insmod $m failed"; done < /modules
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
ip link set lo up
# bench_ip= comes from the kernel command line (netbench.rs).
# shellcheck disable=SC2154
ip addr add "${bench_ip}/24" dev eth0 && ip link set eth0 up || echo "linux-net: eth0 not configured"
# shellcheck disable=SC2012 # queue directories are named rx-0, tx-0, ...
echo "linux-net: $(uname -r) eth0 $(ls /sys/class/net/eth0/queues | tr '\n' ' ')"
# bench net's marks (build/src/dom0/bench-net.sh, nb_linux_mark): dom0
# writes a line to this console's tty before and after each phase; each
# has the vif's event channels' lines of /proc/interrupts (netfront names
# them vif<devid>-q<N>[-tx|-rx]) and eth0's packet counts printed, then
# "end".
(
    while read -r mark; do
        while read -r l; do
            case "$l" in *vif*) echo "linux-irq: $l" ;; esac
        done < /proc/interrupts
        echo "linux-irq: packets rx $(cat /sys/class/net/eth0/statistics/rx_packets) tx $(cat /sys/class/net/eth0/statistics/tx_packets)"
        echo "linux-irq: end $mark"
    done < /dev/hvc0
) &
exec /bin/nettool serve
