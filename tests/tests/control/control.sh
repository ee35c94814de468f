# shellcheck shell=sh
# The toolstack drives app=idle (tests/tests/control.rs): xenstore-ls, an
# idle guest's wake-ups, xl mem-set down and up, debug keys, xl reboot, a
# device whose backend never comes, xl shutdown. Checks are reported as
# `[xl check] ...` lines, collected with the guest's toolstack output.
mem_kib() { # NAME: the domain's current memory in KiB, from xl list
    xl list "$1" | sed -n '2p' | awk '{print $3 * 1024}'
}
run_guest_start ctl /etc/xen-lab/guests/ctl.cfg || exit 1
if wait_console ctl "idle: ready" 1 90; then
    d=$(cat /tmp/lab-domid-ctl)
    xenstore-ls "/local/domain/$d" | sed 's/^/[xl xenstore-ls] /'

    # An idle guest blocks: between two state dumps 5 s apart its wake-up
    # counters move only for the dumps' own XenStore traffic, and its CPU
    # time in xl list hardly moves.
    xl sysrq ctl t
    wait_console ctl "  wake-ups: " 1 30
    echo "[xl check] cpu-before $(xl list ctl | sed -n '2p' | awk '{print $6}')"
    sleep 5
    echo "[xl check] cpu-after $(xl list ctl | sed -n '2p' | awk '{print $6}')"
    xl sysrq ctl t
    wait_console ctl "  wake-ups: " 2 30

    xl mem-set ctl 24m
    wait_console ctl "balloon: target 24576 KiB" 1 60
    echo "[xl check] mem-after-down $(mem_kib ctl)"
    xl mem-set ctl 32m
    wait_console ctl "balloon: target 32768 KiB" 1 60
    echo "[xl check] mem-after-up $(mem_kib ctl)"

    # Xen's 'q' key dumps every domain and raises VIRQ_DEBUG in each.
    xl debug-keys q
    wait_console ctl "debug VIRQ: uptime" 1 30

    echo "[xl check] domid-before-reboot $d"
    xl reboot ctl
    wait_console ctl "idle: ready" 2 120
    xl domid ctl > /tmp/lab-domid-ctl
    d=$(cat /tmp/lab-domid-ctl)
    echo "[xl check] domid-after-reboot $d"

    # A frontend whose backend never comes: backend and backend-id in one
    # transaction, then handed to the guest as libxl does (it owns it).
    xenstore-write "/local/domain/$d/device/vfake/0/backend" "/local/domain/0/backend/vfake/$d/0" \
                   "/local/domain/$d/device/vfake/0/backend-id" 0
    xenstore-chmod -r "/local/domain/$d/device/vfake" "n$d"
    wait_console ctl "device/vfake/0: backend" 1 60

    _t0=$(lab_uptime)
    xl shutdown ctl
    # Until libxl has torn the domain down (its xenstore directory goes);
    # the tries are a hang guard, far above what a clean shutdown takes.
    _d=$(cat /tmp/lab-domid-ctl)
    _tries=1200
    while xenstore-exists "/local/domain/$_d" 2>/dev/null && [ "$_tries" -gt 0 ]; do
        _tries=$((_tries - 1))
        sleep 0.1
    done
    if xenstore-exists "/local/domain/$_d" 2>/dev/null; then _end=ran-out; else _end=gone; fi
    echo "[xl check] shutdown-wait $_end after $(awk "BEGIN{print $(lab_uptime) - $_t0}") s"
    run_guest_wait ctl 60
else
    run_guest_wait ctl 1
fi
