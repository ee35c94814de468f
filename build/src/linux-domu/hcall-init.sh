#!/bin/sh
# The Linux DomU of `bench hypercall` (build/src/linuxbench.rs): loads the
# comparator module, whose init function runs every measurement, and prints
# its BENCH lines. `bench_iters=`/`bench_runs=` on the kernel command line
# reach it as environment variables.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "linux-bench: $(uname -r), loading the module (iters=${bench_iters:-10000} runs=${bench_runs:-1})"
# The module runs everything in its init function.
insmod /xen_hcall_bench.ko iters="${bench_iters:-10000}" runs="${bench_runs:-1}" \
    || echo "linux-bench: insmod failed"
dmesg | sed -n 's/^.*\(BENCH[-A-Z]* .*\)$/\1/p'
dmesg | grep -q 'BENCH-DONE' || { echo "linux-bench: the module printed no BENCH-DONE"; dmesg | tail -n 20; }
echo "linux-bench: powering off"
poweroff -f
