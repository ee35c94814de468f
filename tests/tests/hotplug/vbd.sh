# shellcheck shell=sh
# A disk detached and attached again under verification, CYCLES times
# after each pause of PAUSES (s) (tests/tests/hotplug.rs). DISK: the xl
# disk spec.
dd if=/dev/zero of=/tmp/hot.img bs=1M count=2 2>/dev/null
losetup -d /dev/loop0 2>/dev/null
losetup /dev/loop0 /tmp/hot.img
run_guest_start hotvbd /etc/xen-lab/guests/hotvbd.cfg || exit 1
if wait_console hotvbd "xvda: attach #1: " 1 120; then
    i=1
    for pause in $PAUSES; do
        c=0
        while [ $c -lt "$CYCLES" ]; do
            c=$((c + 1))
            ms_now; t0=$NOW
            xl block-detach hotvbd xvda > /tmp/xl.out 2>&1; drc=$?
            ms_now; t1=$NOW
            [ "$pause" -gt 0 ] && sleep "$pause"
            # The block script let go of the loop device at the detach.
            losetup /dev/loop0 /tmp/hot.img 2>> /tmp/xl.out
            ms_now; t2=$NOW
            xl block-attach hotvbd "$DISK" >> /tmp/xl.out 2>&1; arc=$?
            ms_now; t3=$NOW
            i=$((i + 1))
            if wait_console hotvbd "xvda: attach #$i: " 1 60 > /dev/null; then
                ms_now; ok=$((NOW - t2))
            else
                ok=none
            fi
            echo "[xl cycle] vbd pause=$pause n=$((i - 1)) detach_rc=$drc attach_rc=$arc detach_ms=$((t1 - t0)) attach_ms=$((t3 - t2)) verified_ms=$ok"
            if [ $drc -ne 0 ] || [ $arc -ne 0 ] || [ "$ok" = none ]; then
                sed 's/^/[xl out] /' /tmp/xl.out
            fi
        done
    done
    xl shutdown hotvbd
    run_guest_wait hotvbd 60
else
    run_guest_wait hotvbd 1
fi
