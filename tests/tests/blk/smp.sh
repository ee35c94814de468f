# shellcheck shell=sh
# One disk with 2 queues driven from 2 vCPUs at once, then xl vcpu-set
# 2 -> 1 -> 2 while its I/O runs (tests/tests/blk.rs). Each step waits
# for the guest to have done what the next one needs: passes on both
# lanes, calls on both vCPUs at once, lane 1 parked on vCPU 0. Then a
# save and restore while it runs.
dd if=/dev/zero of=/tmp/q.img bs=1M count=8 2>/dev/null
losetup -d /dev/loop3 2>/dev/null
losetup /dev/loop3 /tmp/q.img
run_guest_start blkq /etc/xen-lab/guests/blkq.cfg || exit 1
if wait_console blkq "blk: smp: ready" 1 120 &&
    wait_console blkq "epoch 0: lane 1 (queue 1) on vCPU 1: pass" 2 240 &&
    wait_console blkq "epoch 0: lane 0 (queue 0) on vCPU 0: pass" 2 240 &&
    wait_console blkq "epoch 0: calls on two vCPUs at once" 1 120; then
    xl vcpu-set -i blkq 1 || echo "[xl check] vcpu-set 1 failed"
    wait_console blkq "smp: vCPU 1 offline" 1 60
    wait_console blkq "epoch 1: lane 1 (queue 1) on vCPU 0: pass" 2 240
    xl vcpu-set -i blkq 2 || echo "[xl check] vcpu-set 2 failed"
    wait_console blkq "smp: vCPU 1 online" 1 60
    wait_console blkq "epoch 2: lane 1 (queue 1) on vCPU 1: pass" 2 240
    wait_console blkq "epoch 2: lane 0 (queue 0) on vCPU 0: pass" 2 240
    wait_console blkq "epoch 2: calls on two vCPUs at once" 1 120
    # Save and restore: the lanes are joined, the disk reconnects to its
    # new backend in the new domain, and each new channel goes back to
    # its vCPU (epoch 3).
    restored=1
    if lab_save blkq /tmp/blkq.save; then
        # The block script let go of the loop device with the domain.
        losetup /dev/loop3 /tmp/q.img 2>/dev/null
        lab_restore blkq /tmp/blkq.save; restored=$?
    fi
    if [ "$restored" -eq 0 ]; then
        wait_console blkq "blk: smp: resumed (a new domain)" 1 120
        wait_console blkq "epoch 3: lane 1 (queue 1) on vCPU 1: pass" 2 240
        wait_console blkq "epoch 3: lane 0 (queue 0) on vCPU 0: pass" 2 240
        wait_console blkq "epoch 3: calls on two vCPUs at once" 1 120
    fi
    rm -f /tmp/blkq.save
fi
xl shutdown blkq
run_guest_wait blkq 120
losetup -d /dev/loop3 2>/dev/null
