# shellcheck shell=sh
# A vif detached and attached again under a running ping, CYCLES times
# after each pause of PAUSES (s), then once with netback's probe delayed
# (tests/tests/hotplug.rs). VIF_IP, VIF_MAC: the guest's.
# shellcheck disable=SC2034 # read by wait_answer (common/ping.sh)
PING_LAST=/tmp/pw.last
run_guest_start hotvif /etc/xen-lab/guests/hotvif.cfg || exit 1
if wait_console hotvif "http: ready" 1 90 && wait_console hotvif "connected: mac" 1 30; then
    nettool ping "$VIF_IP" 20 /tmp/pw.last > /tmp/pw.log 2>&1 &
    pw=$!
    ms_now
    wait_answer "$NOW" 30; echo "[xl check] first-answer-rc $?"
    i=0
    for pause in $PAUSES; do
        c=0
        while [ $c -lt "$CYCLES" ]; do
            c=$((c + 1)); i=$((i + 1))
            ms_now; t0=$NOW
            xl network-detach hotvif 0 > /tmp/xl.out 2>&1; drc=$?
            ms_now; t1=$NOW
            [ "$pause" -gt 0 ] && sleep "$pause"
            ms_now; t2=$NOW
            xl network-attach hotvif mac="$VIF_MAC" bridge=xenbr0 >> /tmp/xl.out 2>&1; arc=$?
            ms_now; t3=$NOW
            if wait_answer "$t2" 30; then ans=$((ANSWER - t2)); else ans=none; fi
            echo "[xl cycle] vif pause=$pause n=$i detach_rc=$drc attach_rc=$arc detach_ms=$((t1 - t0)) attach_ms=$((t3 - t2)) answer_ms=$ans"
            if [ $drc -ne 0 ] || [ $arc -ne 0 ] || [ "$ans" = none ]; then
                sed 's/^/[xl out] /' /tmp/xl.out
            fi
        done
    done
    # The miss of issue 22, made certain: netback probes the new device
    # (InitWait) only 2 s after `xl network-attach` created it, when every
    # event under the guest's device/ has long been delivered. Automatic
    # probing on dom0's xen-backend bus is off meanwhile; libxl waits up
    # to 10 s for InitWait.
    domid=$(cat /tmp/lab-domid-hotvif)
    xl network-detach hotvif 0 > /tmp/xl.out 2>&1; drc=$?
    echo 0 > /sys/bus/xen-backend/drivers_autoprobe
    ms_now; t2=$NOW
    xl network-attach hotvif mac="$VIF_MAC" bridge=xenbr0 >> /tmp/xl.out 2>&1 &
    ap=$!
    sleep 2
    echo "[xl check] delayed-probe-state-before $(xenstore-read /local/domain/0/backend/vif/"$domid"/0/state 2>&1)"
    echo 1 > /sys/bus/xen-backend/drivers_autoprobe
    echo "vif-$domid-0" > /sys/bus/xen-backend/drivers_probe
    # shellcheck disable=SC2320 # the write's own status: the probe taken or not
    prc=$?
    wait $ap; arc=$?
    if wait_answer "$t2" 30; then ans=$((ANSWER - t2)); else ans=none; fi
    echo "[xl cycle] delayed-probe detach_rc=$drc probe_rc=$prc attach_rc=$arc answer_ms=$ans"
    [ "$ans" = none ] && sed 's/^/[xl out] /' /tmp/xl.out
    kill -TERM $pw; wait $pw
    sed 's/^/[xl ping] /' /tmp/pw.log
    xl shutdown hotvif
    run_guest_wait hotvif 60
else
    run_guest_wait hotvif 1
fi
