# shellcheck shell=sh
# Overload: app=http at 192.0.2.11 with svc.max_conns=8 svc.backlog=4
# and an idle timeout of 6 s; see tests/tests/http.rs.
IP=192.0.2.11
run_guest_start full /etc/xen-lab/guests/full.cfg || exit 1
if wait_console full "http: ready" 1 90 && wait_console full "connected: mac" 1 30; then
    ping -c 2 -W 5 $IP > /dev/null 2>&1; echo "[xl check] ping-rc $?"
    # 40 connections at once, for 3 s: 8 served (then each asks for a
    # page), the rest refused with 503 or a reset.
    tool flood flood $IP 80 40 3000
    sleep 1
    # 8 idle clients take every connection: the next client gets 503,
    # until the idle timeout (6 s) gives the connections back.
    httptool hold $IP 80 8 idle 30000 > /tmp/hold8.out 2>&1 & p1=$!
    wait_ready /tmp/hold8.out
    # A client's connect() returns on the SYN-ACK, before the guest has
    # the handshake's last ACK: the guest may not have all 8 yet. Until it
    # does, a request is served (and ends); once it does, it gets 503.
    for i in $(seq 1 20); do
        tool whilefull load $IP 80 /bench 1 1 0
        grep -q "status503=1" /tmp/whilefull.out && break
        sleep 0.3
    done
    echo "[xl check] whilefull-tries $i"
    wait $p1
    sed -n "s/^HTTPTOOL/[xl check] hold8 HTTPTOOL/p" /tmp/hold8.out
    tool afterwards load $IP 80 /bench 4 20 1
    timeout 15 wget -q -O /tmp/page "http://$IP/"; echo "[xl check] page-rc $?"
    sed 's/^/[xl page] /' /tmp/page
    shutdown_guest full
else
    run_guest_wait full 1
fi
