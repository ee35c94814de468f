#!/bin/sh
# The Linux comparator DomU's /init for `cargo xtask bench http`:
# xen-netfront up, then httptool's epoll server on port 80.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
for m in $(cat /modules); do insmod "/$m.ko" || echo "linux-http: insmod $m failed"; done
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
ip link set lo up
ip addr add "${bench_ip}/24" dev eth0 && ip link set eth0 up || echo "linux-http: eth0 not configured"
echo "linux-http: $(uname -r) eth0 $(ls /sys/class/net/eth0/queues | tr '\n' ' ')"
exec /bin/httptool serve 80
