#!/bin/sh
# The Linux DomU of `bench blk` (build/src/blkbench.rs): blkfront up, then
# `blktool` over /dev/xvda (span and I/O count from the kernel command line).
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
while read -r m; do insmod "/$m.ko" || echo "linux-blk: insmod $m failed"; done < /modules
i=0
while [ ! -b /dev/xvda ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
# shellcheck disable=SC2012 # queue directories are named 0, 1, ...
echo "linux-blk: $(uname -r) xvda queues $(ls /sys/block/xvda/mq 2>/dev/null | wc -l)"
/bin/blktool /dev/xvda "${bench_span:-33554432}" "${bench_ios:-2000}"
echo "linux-blk: powering off"
poweroff -f
