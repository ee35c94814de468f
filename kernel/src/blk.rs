//! Block devices for the rest of the kernel: blkfront (pv-drivers) on the
//! kernel's driver environment ([`KernelEnv`]: grants, event channels,
//! waiting in the caller's context) and XenStore.

use crate::driver_env::KernelEnv;
use crate::xenbus;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use pv_drivers::blkfront::{self, BlkError, BlkFront, Config};
use pv_drivers::xenbus::device::{self, DeviceInfo, XenbusError};

/// Set by [`announce_in_flight`], taken by the next publish of any disk.
static ANNOUNCE: AtomicBool = AtomicBool::new(false);

/// Prints `blk: soak: ready for detach: N requests in flight` at the next
/// moment requests are outstanding, so the toolstack detaches a disk while
/// I/O is certainly going on (tests/tests/blk.rs waits for the line).
pub fn announce_in_flight() {
    ANNOUNCE.store(true, Ordering::SeqCst);
}

/// Whether a publish should announce itself (once per
/// [`announce_in_flight`]).
pub fn take_announce() -> bool {
    ANNOUNCE.swap(false, Ordering::SeqCst)
}

pub type Disk = BlkFront<KernelEnv>;

/// The `device/vbd/*` entries of this domain.
pub fn list() -> Vec<Result<DeviceInfo, String>> {
    let all = xenbus::with(device::enumerate).unwrap_or(Ok(Vec::new()));
    match all {
        Ok(devs) => devs
            .into_iter()
            .filter(|d| d.as_ref().map_or(true, |d| d.kind == "vbd"))
            .map(|d| d.map_err(|e| alloc::format!("{e}")))
            .collect(),
        Err(e) => alloc::vec![Err(alloc::format!("cannot list devices: {e}"))],
    }
}

/// The disk's name (`xvda`...).
pub fn name(dev: &DeviceInfo) -> String {
    dev.id.parse().map_or_else(|_| dev.id.clone(), blkfront::vbd_name)
}

/// Connects to `dev`'s backend.
pub fn open(dev: DeviceInfo, config: Config) -> Result<Disk, BlkError> {
    let env = KernelEnv::new()?;
    xenbus::with(|bus| blkfront::start(bus, env, dev, config).and_then(|c| c.finish(bus)))
        .unwrap_or(Err(BlkError::Xenbus(XenbusError::NoStore)))
}

/// Delivers the events of every queue of `d` (a device, or one part of a
/// split one: `BlkFront::split`) to vCPU `cpu` (`EVTCHNOP_bind_vcpu`).
/// Only while no call runs on `d`.
pub fn bind_queues(d: &Disk, cpu: u32) -> Result<(), crate::events::EventError> {
    for port in d.queue_ports() {
        crate::events::bind_vcpu(port, cpu)?;
    }
    Ok(())
}

/// Events of `d`'s queues taken so far on vCPU `cpu` (by the upcall on
/// that vCPU).
pub fn events_on(d: &Disk, cpu: u32) -> u64 {
    d.env().event_count().on(cpu)
}
