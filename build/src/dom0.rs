//! dom0's userspace scripts: `/init` and the scenario shell library.
//!
//! Both are busybox `sh`. They talk to the host through marker lines on
//! dom0's console (which Xen forwards to the serial port, i.e. QEMU's
//! stdout); [`crate::scenario::Parser`] reads them.

/// dom0's `/init`.
pub const INIT_SH: &str = include_str!("dom0/init.sh");

/// The scenario library (`run_guest` etc.), at [`LIB_PATH`].
pub const LIB_SH: &str = include_str!("dom0/lib.sh");

/// Where the library lives in dom0.
pub const LIB_PATH: &str = "/etc/xen-lab/lib.sh";

/// The generated scenario list, sourced by `/init` after dom0 is ready.
pub const SCENARIOS_PATH: &str = "/etc/xen-lab/scenarios.sh";

/// The module load order, one name per line.
pub const MODULES_PATH: &str = "/etc/xen-lab/modules";

/// Directory of the guests' xl configs in dom0.
pub const GUEST_CFG_DIR: &str = "/etc/xen-lab/guests";

/// Directory of the guests' kernels in dom0.
pub const GUEST_KERNEL_DIR: &str = "/guests";

/// Minimal hotplug script for vifs: up, into bridge `xenbr0`, connected.
pub const VIF_SCRIPT: &str = r#"#!/bin/sh
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
"#;

/// Minimal hotplug script for block devices backed by a file or device.
pub const BLOCK_SCRIPT: &str = r#"#!/bin/sh
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
"#;
