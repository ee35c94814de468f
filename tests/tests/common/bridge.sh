# shellcheck shell=sh
# dom0's bridge xenbr0 at 192.0.2.1/24, for the guests' vifs (made once
# per boot: the first script that needs it makes it). Shared by the boot
# tests through xen_tests::shell.
if [ ! -d /sys/class/net/xenbr0 ]; then
    ip link add xenbr0 type bridge
    ip addr add 192.0.2.1/24 dev xenbr0
    ip link set xenbr0 up
fi
