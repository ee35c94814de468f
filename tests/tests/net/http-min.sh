# shellcheck shell=sh
# app=http at its minimum memory, its address from dom0's DHCP server
# (tests/tests/net.rs).
cat > /tmp/udhcpd.conf <<EOF
start 192.0.2.100
end 192.0.2.150
interface xenbr0
static_lease 00:16:3e:0c:00:04 192.0.2.4
option subnet 255.255.255.0
option router 192.0.2.1
lease_file /tmp/udhcpd.leases
pidfile /tmp/udhcpd.pid
EOF
touch /tmp/udhcpd.leases
udhcpd /tmp/udhcpd.conf; dhcp_rc=$?
run_guest_start httpmin /etc/xen-lab/guests/httpmin.cfg || exit 1
# Only now: check lines reach the host while a guest runs.
echo "[xl check] udhcpd-rc $dhcp_rc"
if wait_console httpmin "http: ready" 1 90 && wait_console httpmin "net: dhcp: address" 1 60; then
    ping -c 3 -W 5 192.0.2.4 > /dev/null 2>&1; echo "[xl check] min-ping-rc $?"
    shutdown_guest httpmin
else
    run_guest_wait httpmin 1
fi
