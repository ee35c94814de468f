#!/bin/sh
# The Linux DomU of `bench boot` (build/src/bootbench.rs): netfront up with
# an address, a ready marker, then idle until destroyed.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "linux-boot: init $(cut -d' ' -f1 /proc/uptime) s after the kernel started"
while read -r m; do insmod "/$m.ko" || echo "linux-boot: insmod $m failed"; done < /modules
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
ip addr add "${bench_ip:-192.0.2.21/24}" dev eth0 && ip link set eth0 up \
    || echo "linux-boot: eth0 not configured"
echo "linux-boot: ready on ${bench_ip:-192.0.2.21/24} at $(cut -d' ' -f1 /proc/uptime) s"
sed -n 's/^\(MemTotal\|MemFree\|MemAvailable\):  */\1 /p' /proc/meminfo | tr '\n' ' ' | sed 's/^/linux-boot: meminfo /'
echo
while :; do sleep 3600; done
