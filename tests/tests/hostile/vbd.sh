# shellcheck shell=sh
# blkback's sectors node overwritten with ABSURD_SECTORS (each value in
# turn) while the guest reconnects, until it has refused one
# (tests/tests/hostile.rs).
dd if=/dev/zero of=/tmp/host.img bs=1M count=2 2>/dev/null
losetup -d /dev/loop0 2>/dev/null
losetup /dev/loop0 /tmp/host.img
run_guest_start hostvbd /etc/xen-lab/guests/hostvbd.cfg || exit 1
if wait_console hostvbd "xvda: attach #1: " 1 120; then
    domid=$(cat /tmp/lab-domid-hostvbd)
    be=/local/domain/0/backend/vbd/$domid/51712
    echo "[xl check] sectors-before $(xenstore-read "$be/sectors")"
    # blkback writes the true size again whenever it connects, which can
    # land after the lie and before the guest reads it: the lie is kept
    # in place while the guest reconnects, and rounds go on (at most 6)
    # until the guest has refused a size at least once.
    log=$LAB_CONSOLE_DIR/guest-hostvbd.log
    round=0
    while [ $round -lt 6 ]; do
        round=$((round + 1))
        for v in $ABSURD_SECTORS; do
            xenstore-write "$be/sectors" "$v"
            for s in 5 2 4 1 3 4; do
                xenstore-write "$be/state" "$s"
                xenstore-write "$be/sectors" "$v"
                sleep 0.3
            done
            n=0
            while [ $n -lt 10 ]; do
                xenstore-write "$be/sectors" "$v"
                sleep 0.1
                n=$((n + 1))
            done
        done
        grep -q -e '/sectors = ' -e '/sectors" = ' "$log" && break
    done
    echo "[xl check] flapped"
    echo "[xl check] rounds $round"
    sleep 3
    xl shutdown hostvbd; echo "[xl check] shutdown-rc $?"
    run_guest_wait hostvbd 120
else
    run_guest_wait hostvbd 1
fi
