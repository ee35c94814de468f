#!/bin/sh
# dom0's /init (generated into the initramfs by `xtask`): brings up the Xen
# toolstack, then runs the scenarios in /etc/xen-lab/scenarios.sh and powers
# the machine off. Lines starting with @@ are read by the host.
# The release's paths (LAB_XEN_TOOLS, LAB_XEN_VERSION), written by xtask.
. /etc/xen-lab/release.sh
export PATH=$LAB_XEN_TOOLS:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TERM=dumb

fail() {
    echo "@@DOM0-ERROR $*"
    sleep 1
    poweroff -f
    exit 1
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
# Without devpts xenconsoled cannot give a guest its tty.
mount -t devpts -o gid=5,mode=620 devpts /dev/pts || fail "mount devpts"
for d in /run /var/log /tmp /var/lib/xen; do
    mount -t tmpfs tmpfs "$d"
done
mkdir -p /var/log/xen/console /run/xen /run/xenstored /var/lib/xenstored /var/lib/xen/dump
echo "@@DOM0-INIT $(cut -d' ' -f1 /proc/uptime)"

while read -r m; do
    [ -n "$m" ] || continue
    insmod "/lib/modules/$m.ko" || fail "insmod $m failed"
done < /etc/xen-lab/modules
mount -t xenfs xenfs /proc/xen || fail "mount xenfs failed"

xenstored --pid-file=/run/xen/xenstored.pid || fail "xenstored failed to start"
xen-init-dom0 > /tmp/xen-init-dom0.log 2>&1 || fail "xen-init-dom0: $(tail -n 2 /tmp/xen-init-dom0.log | tr '\n' ' ')"
xenconsoled --log=guest --log-dir=/var/log/xen/console --pid-file=/run/xen/xenconsoled.pid \
    || fail "xenconsoled failed to start"
xl info > /tmp/xl-info 2>&1 || fail "xl info: $(tail -n 2 /tmp/xl-info | tr '\n' ' ')"
[ -n "$LAB_VERBOSE" ] && sed 's/^/[xl info] /' /tmp/xl-info

. /etc/xen-lab/lib.sh
ver=$(awk '/^xen_major/{a=$3} /^xen_minor/{b=$3} /^xen_extra/{c=$3} END{print a"."b c}' /tmp/xl-info)
mem=$(awk '/^free_memory/{print $3}' /tmp/xl-info)
echo "@@DOM0-READY xen=$ver free_memory=$mem uptime=$(cut -d' ' -f1 /proc/uptime)"

. /etc/xen-lab/scenarios.sh

echo "@@ALL-DONE"
sync
poweroff -f
