# shellcheck shell=sh
# A lying backend (tests/tests/hostile.rs): once the guest's disk is
# verified, blkback is unbound and dom0 plays the backend's handshake with
# each value of ABSURD_SECTORS until the guest refuses it by name; then
# blkback comes back, and its state node is flapped with lies beside it.
dd if=/dev/zero of=/tmp/host.img bs=1M count=2 2>/dev/null
losetup -d /dev/loop0 2>/dev/null
losetup /dev/loop0 /tmp/host.img
run_guest_start hostvbd /etc/xen-lab/guests/hostvbd.cfg || exit 1
if wait_console hostvbd "xvda: attach #1: " 1 120; then
    domid=$(cat /tmp/lab-domid-hostvbd)
    be=/local/domain/0/backend/vbd/$domid/51712
    echo "[xl check] sectors-before $(xenstore-read "$be/sectors")"
    fe=/local/domain/$domid/device/vbd/51712
    # A lying backend, with nobody to race: blkback is unbound from the
    # device (it writes the true size whenever it connects), and dom0
    # plays the backend's side of the handshake itself, reacting to the
    # guest's state (InitWait until the guest is Initialised, then
    # Connected) until the guest has refused the lie in place by name.
    # The guest is idle (its first attach verified): no request in flight.
    echo "vbd-$domid-51712" > /sys/bus/xen-backend/drivers/vbd/unbind
    # shellcheck disable=SC2320 # the write's own status
    rc=$?
    echo "[xl check] unbind-rc $rc"
    log=$LAB_CONSOLE_DIR/guest-hostvbd.log
    n=0
    # `--`: xenstore-write takes "-1" for an option otherwise.
    for v in $ABSURD_SECTORS; do
        xenstore-write -- "$be/sectors" "$v"
        t=0
        until grep -q -- "/sectors = \"\{0,1\}$v" "$log"; do
            t=$((t + 1))
            if [ $t -gt 300 ]; then
                echo "[xl check] lie $v never refused"
                break 2
            fi
            f=$(xenstore-read "$fe/state")
            b=$(xenstore-read "$be/state")
            if [ "$f" = 3 ]; then
                [ "$b" = 4 ] || xenstore-write "$be/state" 4
            elif [ "$b" != 2 ]; then
                xenstore-write "$be/state" 2
            fi
            sleep 0.3
        done
        n=$((n + 1))
    done
    echo "[xl check] lies $n"
    # blkback back: it connects with the true size, and the guest finds
    # its pattern intact.
    echo "vbd-$domid-51712" > /sys/bus/xen-backend/drivers/vbd/bind
    # shellcheck disable=SC2320 # the write's own status
    rc=$?
    echo "[xl check] rebind-rc $rc"
    wait_console hostvbd "xvda: attach #2: previous" 1 60 && echo "[xl check] reattached"
    # A flapping backend: blkback bound, its state node rewritten under
    # the connected guest, a lie in sectors beside it. Two values only:
    # each flap is a fault the guest counts, and 16 in ten minutes get a
    # device declared broken.
    for v in abc 18446744073709551615; do
        for s in 5 2 4 1 3 4; do
            xenstore-write "$be/state" "$s"
            xenstore-write -- "$be/sectors" "$v"
            sleep 0.3
        done
    done
    echo "[xl check] flapped"
    sleep 3
    xl shutdown hostvbd; echo "[xl check] shutdown-rc $?"
    run_guest_wait hostvbd 120
else
    run_guest_wait hostvbd 1
fi
