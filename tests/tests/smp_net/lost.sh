# shellcheck shell=sh
# app=http with 2 vCPUs and xenstore.lose_notify=N (tests/tests/smp_net.rs):
# once the second vCPU runs, N notifications to xenstored are not sent, so
# xenstored sleeps with the vif connect's requests in the ring (the stall
# of docs/smp.md, made to happen). Nothing in dom0 touches xenstored while
# the guest connects. Needs NAME, IP and the http helpers (tool).
run_guest_start "$NAME" "/etc/xen-lab/guests/$NAME.cfg" || exit 1
if wait_console "$NAME" "http: ready" 1 120 && wait_console "$NAME" "connected: mac" 1 120; then
    tool lost-load load "$IP" 80 /bench 8 200 0
    shutdown_guest "$NAME"
else
    run_guest_wait "$NAME" 1
fi
