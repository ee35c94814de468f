# shellcheck shell=sh
# app=http at 192.0.2.6 ballooned down to 4 MiB and up again under traffic
# (tests/tests/hostile.rs).
run_guest_start hostmem /etc/xen-lab/guests/hostmem.cfg || exit 1
if wait_console hostmem "http: ready" 1 90 && wait_console hostmem "connected: mac" 1 30; then
    ping -c 2 -W 5 192.0.2.6 > /dev/null 2>&1; echo "[xl check] ping-before-rc $?"
    ( while :; do timeout 10 wget -q -O /dev/null http://192.0.2.6/status.json; done ) &
    traffic=$!
    ping 192.0.2.6 > /tmp/mem-ping 2>&1 &
    pinger=$!
    sleep 2
    xl mem-set hostmem 4m; echo "[xl check] mem-set-down-rc $?"
    wait_console hostmem "balloon: target 4096 KiB" 1 60
    sleep 5
    xl mem-set hostmem 32m; echo "[xl check] mem-set-up-rc $?"
    wait_console hostmem "balloon: target 32768 KiB" 1 60
    sleep 3
    kill $traffic $pinger; wait $traffic $pinger 2>/dev/null
    echo "[xl check] pings $(grep -c 'bytes from' /tmp/mem-ping)"
    timeout 15 wget -q -O /tmp/mem-json http://192.0.2.6/status.json; echo "[xl check] json-after-rc $?"
    xl shutdown hostmem; echo "[xl check] shutdown-rc $?"
    run_guest_wait hostmem 90
else
    run_guest_wait hostmem 1
fi
