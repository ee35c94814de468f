# shellcheck shell=sh
# app=echo at 192.0.2.3: echo round trips over ECHO_CONNS connections from
# the local ports ECHO_PORTS (comma-separated), idle holds, bulk both
# ways (tests/tests/net.rs).
run_guest_start echo /etc/xen-lab/guests/echo.cfg || exit 1
if wait_console echo "echo: ready" 1 90 && wait_console echo "connected: mac" 1 30; then
    ping -c 2 -W 5 192.0.2.3 > /dev/null 2>&1; echo "[xl check] echo-ping-rc $?"
    t0=$(lab_uptime)
    # nettool (a static helper, 64 KiB per call): 1,000 round trips over
    # ECHO_CONNS connections at once, from local ports ECHO_PORTS (chosen on
    # the host so that their flows hash to both queues, both ways), sizes
    # 1..65536 at random, every byte compared; one line per connection
    # becomes the check the test reads.
    # The sizes' seed changes every run and is recorded, so a failure can
    # be replayed with it.
    seed=$(date +%s); echo "[xl check] echo-seed $seed"
    # 16 idle clients hold echo connections meanwhile (httptool hold:
    # connect, send nothing); the guest closes them after svc.idle_ms.
    httptool hold 192.0.2.3 7 16 idle 60000 > /tmp/echohold.out 2>&1 & hold=$!
    for _ in $(seq 1 150); do grep -q hold-ready /tmp/echohold.out 2>/dev/null && break; sleep 0.2; done
    nettool echo 192.0.2.3 7 1000 65536 "$seed" "$ECHO_CONNS" "$ECHO_PORTS" > /tmp/echo.out 2>&1
    echo "[xl check] echo-nettool-rc $?"
    wait $hold
    sed -n 's/^HTTPTOOL/[xl check] echo-hold HTTPTOOL/p' /tmp/echohold.out
    sed -n 's/^NETTOOL echo conn=\([0-9]*\) trips=\([0-9]*\) bad=\([0-9]*\).* lport=\([0-9]*\).*/[xl check] echo-client \1 trips \2 bad \3 lport \4/p' /tmp/echo.out
    sed 's/^/[xl echo] /' /tmp/echo.out
    echo "[xl check] echo-seconds $t0 $(lab_uptime)"
    # Bulk both ways (discard on 9, the checkable source on 19, every
    # byte compared): what the offload counters are read after.
    nettool send 192.0.2.3 9 8388608 > /tmp/send.out 2>&1; echo "[xl check] bulk-send-rc $?"
    nettool recv 192.0.2.3 19 8388608 > /tmp/recv.out 2>&1; echo "[xl check] bulk-recv-rc $?"
    sed 's/^/[xl bulk] /' /tmp/send.out /tmp/recv.out
    xl sysrq echo c
    wait_console echo "net: counters" 1 30
    shutdown_guest echo
else
    run_guest_wait echo 1
fi
