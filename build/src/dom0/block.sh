#!/bin/sh
# block hotplug (busybox sh): $1 = add|remove; the target is in xenstore.
case "$1" in
add)
    target=$(xenstore-read "$XENBUS_PATH/params")
    dev=$target
    if [ -f "$target" ]; then
        dev=$(losetup -f)
        losetup "$dev" "$target" || exit 1
    fi
    xenstore-write "$XENBUS_PATH/physical-device" "$(stat -L -c '%t:%T' "$dev")"
    xenstore-write "$XENBUS_PATH/physical-device-path" "$dev"
    xenstore-write "$XENBUS_PATH/hotplug-status" connected
    ;;
remove)
    dev=$(xenstore-read "$XENBUS_PATH/physical-device-path" 2>/dev/null)
    case "$dev" in /dev/loop*) losetup -d "$dev" 2>/dev/null ;; esac
    ;;
esac
exit 0
