# shellcheck shell=sh
# Three loop disks written by one guest, hashed, verified by a second,
# then detached under I/O from a third (tests/tests/blk.rs).
# The block hotplug script detaches loop devices on remove: attach again
# before each guest.
loops() {
    for i in 0 1 2; do losetup -d /dev/loop$i 2>/dev/null; done
    losetup /dev/loop0 /tmp/a.img && losetup /dev/loop1 /tmp/b.img && losetup /dev/loop2 /tmp/c.img
}
dd if=/dev/zero of=/tmp/a.img bs=1M count=8 2>/dev/null
dd if=/dev/zero of=/tmp/b.img bs=512 count=67585 2>/dev/null
dd if=/dev/zero of=/tmp/c.img bs=1M count=1 2>/dev/null

loops
run_guest blkw /etc/xen-lab/guests/blkw.cfg 400
# Hash while the verifying guest runs (it only reads): the host collects
# `[xl check]` lines only while some guest is running.
for i in a b c; do
    sha256sum "/tmp/$i.img" | cut -d' ' -f1 > "/tmp/sha-$i"
    wc -c < "/tmp/$i.img" | tr -d ' ' > "/tmp/size-$i"
done
od -A n -t x8 -j $((67585 * 512 - 8)) -N 8 /tmp/b.img | tr -d ' ' > /tmp/word-b-last

loops
run_guest_start blkv /etc/xen-lab/guests/blkv.cfg || exit 1
for i in a b c; do
    echo "[xl check] sha-$i $(cat /tmp/sha-$i)"
    echo "[xl check] size-$i $(cat /tmp/size-$i)"
done
echo "[xl check] word-b-last $(cat /tmp/word-b-last)"
run_guest_wait blkv 400

loops
run_guest_start blkd /etc/xen-lab/guests/blkd.cfg || exit 1
# The guest prints the ready line at a moment it has requests in flight,
# and again once the first disk is closed; it keeps doing I/O meanwhile.
if wait_console blkd "soak: ready for detach" 1 120; then
    xl block-detach blkd xvdb && echo "[xl check] detached xvdb"
    wait_console blkd "xvdb: closed" 1 60
    wait_console blkd "soak: ready for detach" 2 60
    xl block-detach blkd xvda && echo "[xl check] detached xvda"
    wait_console blkd "xvda: closed" 1 60
    run_guest_wait blkd 120
else
    run_guest_wait blkd 1
fi
