# shellcheck shell=sh
# app=http with 2 vCPUs (tests/tests/smp_net.rs): load from dom0 with
# each vCPU's time before and after; xl vcpu-set 2 -> 1 -> 2 under a load
# that runs through both; xl mem-set 48m and back with a load after each;
# a save and restore (MOBILE=1) or a live migration (MIGRATE=1) with a
# load before and after each.
# Needs NAME, IP and the http helpers (tool).

# "VCPU:SECONDS ..." from xl vcpu-list (a vCPU that is down shows "--p"
# and keeps its time).
vtimes() { xl vcpu-list "$1" | tail -n +2 | awk '{printf "%s:%s:%s ", $3, $5, $6}'; }

# Loads of 400 requests, one connection each (every one a new flow, so
# both queues carry some), 16 clients, until /tmp/$1.stop exists; each
# load's HTTPTOOL line goes to /tmp/$1.loads.
load_loop() { # KEY
    rm -f "/tmp/$1.stop" "/tmp/$1.loads"
    while [ ! -e "/tmp/$1.stop" ]; do
        httptool load "$IP" 80 /bench 16 400 0 | grep '^HTTPTOOL' >> "/tmp/$1.loads"
    done
}

# Stops load_loop KEY (pid $2) after its current load; its lines as
# "[xl check] KEY-N HTTPTOOL ...".
load_stop() { # KEY PID
    : > "/tmp/$1.stop"
    wait "$2"
    _n=0
    while read -r _l; do
        _n=$((_n + 1))
        echo "[xl check] $1-$_n $_l"
    done < "/tmp/$1.loads"
    echo "[xl check] $1-loads $_n"
}

run_guest_start "$NAME" "/etc/xen-lab/guests/$NAME.cfg" || exit 1
if wait_console "$NAME" "http: ready" 1 120 && wait_console "$NAME" "connected: mac" 1 60 \
    && wait_console "$NAME" "net: shard 1 serves on vCPU 1" 1 60; then
    ping -c 2 -W 5 "$IP" > /dev/null 2>&1; echo "[xl check] ping-rc $?"
    # 1. Load: both vCPUs' time.
    echo "[xl check] vtime-0 $(vtimes "$NAME")"
    tool load1 load "$IP" 80 /bench 32 3000 0
    echo "[xl check] vtime-1 $(vtimes "$NAME")"
    tool load2 load "$IP" 80 /bench 32 3000 1
    echo "[xl check] vtime-2 $(vtimes "$NAME")"
    xl sysrq "$NAME" t
    wait_console "$NAME" "net: shard 1 " 2 30
    # 2. xl vcpu-set 2 -> 1 -> 2 under traffic.
    load_loop hot & lp=$!
    sleep 3
    xl vcpu-set -i "$NAME" 1 || echo "[xl check] vcpu-set-1 failed"
    wait_console "$NAME" "smp: vCPU 1 offline" 1 60
    echo "[xl check] vcpus-1 $(vtimes "$NAME")"
    sleep 3
    xl vcpu-set -i "$NAME" 2 || echo "[xl check] vcpu-set-2 failed"
    wait_console "$NAME" "smp: vCPU 1 online" 1 60
    wait_console "$NAME" "net: shard 1 serves on vCPU 1" 2 60
    echo "[xl check] vcpus-2 $(vtimes "$NAME")"
    sleep 3
    # Still loading after both: the traffic spanned them.
    if [ -e "/tmp/hot.stop" ]; then r=0; else kill -0 $lp 2>/dev/null && r=1 || r=0; fi
    echo "[xl check] hot-running-after $r"
    load_stop hot $lp
    # Ballooning while both vCPUs serve: the kernel's unmaps are flushed
    # on every vCPU (PV: the balloon line counts them).
    xl mem-set "$NAME" 48m
    wait_console "$NAME" "balloon: target 49152 KiB" 1 60
    tool balloon-load load "$IP" 80 /bench 16 400 0
    xl mem-set "$NAME" 64m
    wait_console "$NAME" "balloon: target 65536 KiB" 1 60
    tool balloon-back load "$IP" 80 /bench 16 400 0
    echo "[xl check] vtime-3 $(vtimes "$NAME")"
    # 3. Mobility: save + restore, or a live migration.
    if [ "${MOBILE:-0}" = 1 ]; then
        lab_save "$NAME" "/tmp/$NAME.save" && lab_restore "$NAME" "/tmp/$NAME.save"
        rm -f "/tmp/$NAME.save"
        wait_console "$NAME" "secondary vCPUs back (initialised anew)" 1 60
        back=1
        wait_console "$NAME" "net: shard 1 serves on vCPU 1" 3 60 || back=0
        echo "[xl check] vcpus-restored $(vtimes "$NAME")"
        # A guest that did not come back fails the test: no load against
        # it (1,000 requests to no one take many minutes).
        [ "$back" = 1 ] && tool after-restore load "$IP" 80 /bench 16 1000 0
        echo "[xl check] vtime-4 $(vtimes "$NAME")"
    fi
    if [ "${MIGRATE:-0}" = 1 ]; then
        lab_migrate "$NAME"
        wait_console "$NAME" "secondary vCPUs back (initialised anew)" 1 60
        back=1
        wait_console "$NAME" "net: shard 1 serves on vCPU 1" 3 60 || back=0
        echo "[xl check] vcpus-migrated $(vtimes "$NAME")"
        # A guest that did not come back fails the test: no load against
        # it (1,000 requests to no one take many minutes).
        [ "$back" = 1 ] && tool after-migrate load "$IP" 80 /bench 16 1000 0
        echo "[xl check] vtime-5 $(vtimes "$NAME")"
    fi
    xl sysrq "$NAME" t
    wait_console "$NAME" "net: shard 1 " 4 30
    shutdown_guest "$NAME"
else
    run_guest_wait "$NAME" 1
fi
