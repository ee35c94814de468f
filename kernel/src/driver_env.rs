//! The kernel's side of every PV frontend (`pv_drivers::env`): shared
//! pages from the heap (`platform::shared_pages`, the unsafe part), grants
//! of them (by page, never by frame number) from the global table, event channels whose handler only counts (the
//! driver or service loop does the work in its own context, never the
//! upcall), and, for blkfront, waiting on that count with a deadline.
//!
//! Each environment has its own event counter: all the ports it binds
//! count into it, so a device (or the network service, for all its vifs)
//! wakes on its own events only.

use crate::{blk, events, grants, timer};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use grant_tables::GrantError;
use hypercall::abi::grant_table::GrantRef;
use hypercall::{DomId, EvtchnPort};
use platform::shared_pages::SharedPages;
use pv_drivers::blkfront::BlkEnv;
use pv_drivers::env::{EnvError, EventChannels, Grants, PageAlloc};

/// Environments that can exist at once: the network service and up to
/// 16 disks, one event counter each.
const MAX_ENVS: usize = 17;
static EVENTS: [AtomicU64; MAX_ENVS] = [const { AtomicU64::new(0) }; MAX_ENVS];
static USED: spin::Mutex<[bool; MAX_ENVS]> = spin::Mutex::new([false; MAX_ENVS]);

fn on_event(_: EvtchnPort, slot: usize) {
    EVENTS[slot].fetch_add(1, Ordering::SeqCst);
}

/// An environment's event count, readable without borrowing it (a wait
/// condition while the driver holds the environment).
#[derive(Clone, Copy)]
pub struct EventCount(usize);

impl EventCount {
    /// Events so far on every port of the environment.
    pub fn get(self) -> u64 {
        EVENTS[self.0].load(Ordering::SeqCst)
    }
}

/// One driver's environment: its event counter slot and the ports it
/// bound (closed when it is dropped).
pub struct KernelEnv {
    slot: usize,
    seen: u64,
    ports: Vec<EvtchnPort>,
}

impl KernelEnv {
    /// A new environment: a free event counter slot.
    pub fn new() -> Result<Self, EnvError> {
        let mut used = USED.lock();
        let slot =
            used.iter().position(|u| !u).ok_or(EnvError::TooManyDevices { max: MAX_ENVS })?;
        used[slot] = true;
        Ok(KernelEnv { slot, seen: EVENTS[slot].load(Ordering::SeqCst), ports: Vec::new() })
    }

    /// The count its ports' events move.
    pub fn event_count(&self) -> EventCount {
        EventCount(self.slot)
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

impl PageAlloc for KernelEnv {
    type Pages = SharedPages;

    fn alloc_pages(&mut self, n: usize) -> Result<SharedPages, EnvError> {
        SharedPages::new(n).ok_or(EnvError::OutOfMemory { pages: n })
    }
}

impl Grants for KernelEnv {
    fn grant(
        &mut self,
        to: DomId,
        pages: &SharedPages,
        index: usize,
        readonly: bool,
    ) -> Result<GrantRef, EnvError> {
        match grants::with(|t| t.grant_access(to, pages, index, readonly)) {
            Some(Ok(g)) => Ok(g),
            Some(Err(GrantError::TableFull { .. } | GrantError::ReservationEmpty)) => {
                Err(EnvError::OutOfGrants)
            }
            Some(Err(e)) => {
                log::warn!("grant of page {index} of a shared set to {to:?}: {e}");
                Err(EnvError::GrantRefused)
            }
            None => Err(EnvError::NoGrantTable),
        }
    }

    fn revoke(&mut self, gref: GrantRef) -> bool {
        grants::with(|t| t.end_access(gref).is_ok()).unwrap_or(false)
    }
}

fn env_error(e: events::EventError) -> EnvError {
    match e {
        events::EventError::Xen(x) => EnvError::EventChannel(x),
        events::EventError::Table(t) => {
            log::warn!("event channel: {t}");
            EnvError::PortTable
        }
    }
}

impl EventChannels for KernelEnv {
    fn bind_event(&mut self, backend: DomId) -> Result<EvtchnPort, EnvError> {
        let port = events::alloc_unbound(backend).map_err(env_error)?;
        if let Err(e) = events::register(port, on_event, self.slot) {
            let _ = events::close(port);
            return Err(env_error(e));
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
}

impl BlkEnv for KernelEnv {
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
        if blk::take_announce() {
            crate::kprintln!("blk: soak: ready for detach: {in_flight} requests in flight");
        }
    }
}
