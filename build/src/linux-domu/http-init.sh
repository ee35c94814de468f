#!/bin/sh
# The Linux DomU of `bench http` (build/src/httpbench.rs): netfront up on
# ${bench_ip}/24 (kernel command line), then `httptool serve 80 WORKERS` (epoll HTTP/1.1 servers) in front.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
while read -r m; do insmod "/$m.ko" || echo "linux-http: insmod $m failed"; done < /modules
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
ip link set lo up
# bench_ip= comes from the kernel command line (httpbench.rs).
# shellcheck disable=SC2154
ip addr add "${bench_ip}/24" dev eth0 && ip link set eth0 up || echo "linux-http: eth0 not configured"
# shellcheck disable=SC2012 # queue directories are named rx-0, tx-0, ...
echo "linux-http: $(uname -r) eth0 $(ls /sys/class/net/eth0/queues | tr '\n' ' ')"
# bench_workers= (the DomU's vCPUs): one SO_REUSEPORT epoll worker each.
# shellcheck disable=SC2154
exec /bin/httptool serve 80 "${bench_workers:-1}"
