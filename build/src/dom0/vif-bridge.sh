#!/bin/sh
# vif hotplug (busybox sh): called by libxl with $1 = online|offline|add|remove.
dev=${vif:-$(xenstore-read "$XENBUS_PATH/vifname" 2>/dev/null)}
case "$1" in
online|add)
    ip link set "$dev" up
    bridge=$(xenstore-read "$XENBUS_PATH/bridge" 2>/dev/null)
    bridge=${bridge:-xenbr0}
    if [ -d "/sys/class/net/$bridge" ]; then
        ip link set "$dev" master "$bridge"
    fi
    xenstore-write "$XENBUS_PATH/hotplug-status" connected
    ;;
offline|remove)
    ip link set "$dev" down 2>/dev/null
    xenstore-rm "$XENBUS_PATH/hotplug-status" 2>/dev/null
    ;;
esac
exit 0
