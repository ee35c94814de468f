# shellcheck shell=sh
# `cargo xtask bench blk` in dom0 (build/src/blkbench.rs), sourced by its
# scenario script after lib.sh.
#
# bk_run NAME CFG MIB TIMEOUT: (re)attaches /tmp/bench.img (MIB MiB, made
#   once, so every guest sees the same disk) as /dev/loop0, which NAME's
#   config names as its disk, then runs NAME with run_guest. The block
#   hotplug script detaches the loop device when the guest goes.

bk_run() {
    losetup -d /dev/loop0 2>/dev/null
    [ -f /tmp/bench.img ] || dd if=/dev/zero of=/tmp/bench.img bs=1M count="$3" 2>/dev/null
    losetup /dev/loop0 /tmp/bench.img
    run_guest "$1" "$2" "$4"
}
