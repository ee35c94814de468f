#!/bin/sh
# The Linux DomU of `bench paging` (build/src/pagingbench.rs), booted as PV
# or as PVH: per round, loads the paging module (its init function times
# the kernel-side figures), copies its BENCH lines from the kernel log,
# unloads it, then times a user process's page-fault round trip with
# /pfbench. `bench_iters=`, `bench_runs=`, `bench_walk_mib=` and
# `bench_passes=` on the kernel command line reach it as environment
# variables.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
iters=${bench_iters:-10000}
runs=${bench_runs:-1}
echo "linux-paging: $(uname -r), $runs round(s) of iters=$iters walk_mib=${bench_walk_mib:-64} passes=${bench_passes:-20}"
dmesg -c > /dev/null
failures=0
r=1
while [ "$r" -le "$runs" ]; do
    echo "BENCH-RUN n=$r"
    if ! insmod /xen_paging_bench.ko iters="$iters" walk_mib="${bench_walk_mib:-64}" \
        passes="${bench_passes:-20}"; then
        echo "BENCH-ERROR insmod xen_paging_bench failed"
        failures=$((failures + 1))
    fi
    dmesg -c > /tmp/kmsg
    sed -n 's/^.*\(BENCH[-A-Z]* .*\)$/\1/p' /tmp/kmsg | grep -v '^BENCH-MODULE-DONE'
    grep -q 'BENCH-MODULE-DONE failures=0' /tmp/kmsg || {
        failures=$((failures + 1))
        echo "linux-paging: the module did not finish cleanly:"
        tail -n 20 /tmp/kmsg
    }
    rmmod xen_paging_bench 2>/dev/null
    tsc=$(sed -n 's/.*BENCH-ENV .*tsc_hz=\([0-9]*\).*/\1/p' /tmp/kmsg | tail -n 1)
    /pfbench "$iters" "${tsc:-0}" || failures=$((failures + 1))
    r=$((r + 1))
done
echo "BENCH-DONE failures=$failures"
echo "linux-paging: powering off"
poweroff -f
