# shellcheck shell=sh
# app=http at 192.0.2.2: ping, pages, a vif detached and attached again
# (tests/tests/net.rs).
run_guest_start http /etc/xen-lab/guests/http.cfg || exit 1
if wait_console http "http: ready" 1 90 && wait_console http "connected: mac" 1 30; then
    ping -c 3 -W 5 192.0.2.2 > /tmp/ping 2>&1; echo "[xl check] ping-rc $?"
    sed 's/^/[xl ping] /' /tmp/ping
    http_get / /tmp/page; echo "[xl check] wget-rc $?"
    sed 's/^/[xl page] /' /tmp/page
    http_get /status.json /tmp/json; echo "[xl check] json-rc $?"
    sed 's/^/[xl json] /' /tmp/json
    xl network-detach http 0; echo "[xl check] detach-rc $?"
    wait_console http "hotplug: vif/0: detached #1" 1 60
    xl network-attach http mac=00:16:3e:0c:00:02 bridge=xenbr0; echo "[xl check] attach-rc $?"
    wait_console http "connected: mac" 2 60
    ok=1
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        http_get / /tmp/page2 && { ok=0; break; }
        sleep 1
    done
    echo "[xl check] wget-after-reattach-rc $ok"
    sed 's/^/[xl page2] /' /tmp/page2
    ping -c 2 -W 5 192.0.2.2 > /dev/null 2>&1; echo "[xl check] ping-after-reattach-rc $?"
    shutdown_guest http
else
    run_guest_wait http 1
fi
