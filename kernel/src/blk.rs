//! Block devices for the rest of the kernel: blkfront (pv-drivers) on the
//! real grant table, event channels and XenStore. The event handler only
//! counts; waiting happens in the caller's context.

use crate::{events, grants, timer, xenbus};
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use hypercall::abi::grant_table::GrantRef;
use hypercall::{DomId, EvtchnPort, Mfn};
use platform::pv::blk::SharedPages;
use pv_drivers::blkfront::{self, BlkEnv, BlkError, BlkFront, Config};
use pv_drivers::xenbus::device::{self, DeviceInfo};

/// Devices that can be open at once (one event counter each).
const MAX_DISKS: usize = 16;
static EVENTS: [AtomicU64; MAX_DISKS] = [const { AtomicU64::new(0) }; MAX_DISKS];
static USED: spin::Mutex<[bool; MAX_DISKS]> = spin::Mutex::new([false; MAX_DISKS]);

fn on_event(_: EvtchnPort, slot: usize) {
    EVENTS[slot].fetch_add(1, Ordering::SeqCst);
}

/// One device's kernel side: its event counter slot, which the event
/// channels of all its queues count into.
pub struct KernelEnv {
    slot: usize,
    seen: u64,
    ports: Vec<EvtchnPort>,
}

impl KernelEnv {
    /// A device's environment: a free event counter slot.
    pub fn new() -> Result<Self, BlkError> {
        let mut used = USED.lock();
        let slot = used
            .iter()
            .position(|u| !u)
            .ok_or_else(|| BlkError::Resource(alloc::format!("more than {MAX_DISKS} disks")))?;
        used[slot] = true;
        Ok(KernelEnv { slot, seen: EVENTS[slot].load(Ordering::SeqCst), ports: Vec::new() })
    }
}

impl Drop for KernelEnv {
    fn drop(&mut self) {
        for p in self.ports.drain(..) {
            let _ = events::close(p);
        }
        USED.lock()[self.slot] = false;
    }
}

impl BlkEnv for KernelEnv {
    type Pages = SharedPages;

    fn alloc_pages(&mut self, n: usize) -> Result<SharedPages, BlkError> {
        SharedPages::new(n)
            .ok_or_else(|| BlkError::Resource("out of memory for shared pages".into()))
    }

    fn grant(&mut self, to: DomId, frame: Mfn, readonly: bool) -> Result<GrantRef, BlkError> {
        match grants::with(|t| t.grant_access(to, frame, readonly)) {
            Some(Ok(g)) => Ok(g),
            Some(Err(e)) => Err(BlkError::Resource(alloc::format!("grant: {e}"))),
            None => Err(BlkError::Resource("grant tables unavailable".into())),
        }
    }

    fn revoke(&mut self, gref: GrantRef) -> bool {
        grants::with(|t| t.end_access(gref).is_ok()).unwrap_or(false)
    }

    fn bind_event(&mut self, backend: DomId) -> Result<EvtchnPort, BlkError> {
        let port = events::alloc_unbound(backend)
            .map_err(|e| BlkError::Resource(alloc::format!("event channel: {e}")))?;
        if let Err(e) = events::register(port, on_event, self.slot) {
            let _ = events::close(port);
            return Err(BlkError::Resource(alloc::format!("event channel: {e}")));
        }
        self.ports.push(port);
        Ok(port)
    }

    fn close_event(&mut self, port: EvtchnPort) {
        let _ = events::close(port);
        self.ports.retain(|&p| p != port);
    }

    fn notify(&mut self, port: EvtchnPort) {
        let _ = events::send(port);
    }

    fn wait_event(&mut self, deadline_ns: u64) -> bool {
        let seen = self.seen;
        let c = &EVENTS[self.slot];
        let moved = timer::wait_until(deadline_ns, || c.load(Ordering::SeqCst) != seen);
        self.seen = c.load(Ordering::SeqCst);
        moved
    }

    fn now_ns(&self) -> u64 {
        platform::now_ns()
    }

    fn published(&mut self, in_flight: usize) {
        if ANNOUNCE.swap(false, Ordering::SeqCst) {
            crate::kprintln!("blk: soak: ready for detach: {in_flight} requests in flight");
        }
    }
}

/// Set by [`announce_in_flight`], taken by the next publish of any disk.
static ANNOUNCE: AtomicBool = AtomicBool::new(false);

/// Prints `blk: soak: ready for detach: N requests in flight` at the next
/// moment requests are outstanding, so the toolstack detaches a disk while
/// I/O is certainly going on (tests/tests/blk.rs waits for the line).
pub fn announce_in_flight() {
    ANNOUNCE.store(true, Ordering::SeqCst);
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
        .unwrap_or_else(|| Err(BlkError::Resource("no XenStore".into())))
}
