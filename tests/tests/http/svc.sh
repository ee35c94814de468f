# shellcheck shell=sh
# The service under stalled clients, keep-alive, pipelining and bad
# requests: app=http at 192.0.2.10, timeouts of 5 s (svc.idle_ms,
# svc.header_ms), see tests/tests/http.rs.
IP=192.0.2.10
run_guest_start svc /etc/xen-lab/guests/svc.cfg || exit 1
if wait_console svc "http: ready" 1 90 && wait_console svc "connected: mac" 1 30; then
    ping -c 2 -W 5 $IP > /dev/null 2>&1; echo "[xl check] ping-rc $?"
    # 16 idle connections, 16 with half a head, 4 sending a head a byte
    # every 250 ms: all held while 64 clients make 1,000 requests.
    # (`wait` with their pids only: the lab's own helpers run in the
    # background too.)
    httptool hold $IP 80 16 idle 40000 > /tmp/idle.out 2>&1 & p1=$!
    httptool hold $IP 80 16 half 40000 > /tmp/half.out 2>&1 & p2=$!
    httptool hold $IP 80 4 drip 40000 > /tmp/drip.out 2>&1 & p3=$!
    wait_ready /tmp/idle.out /tmp/half.out /tmp/drip.out
    tool storm load $IP 80 /bench 64 1000 0
    wait $p1 $p2 $p3
    for f in idle half drip; do
        sed -n "s/^HTTPTOOL/[xl check] hold-$f HTTPTOOL/p" /tmp/$f.out
    done
    # One connection, 1,000 requests.
    tool keepalive load $IP 80 /bench 1 1000 1
    # 100 requests in one go: answered in order.
    tool pipe pipe $IP 80 100
    # A head of 8,000 bytes (the limit is 4,096): 431.
    tool big big $IP 80 8000
    raw garbage $IP '\026\003\001garbage\r\n\r\n'
    raw toolarge $IP 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 999999\r\n\r\n'
    raw head $IP 'HEAD /bench HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'
    timeout 15 wget -q -O /tmp/page "http://$IP/"; echo "[xl check] page-rc $?"
    sed 's/^/[xl page] /' /tmp/page
    shutdown_guest svc
else
    run_guest_wait svc 1
fi
