//! The kernel's side of every PV frontend (`pv_drivers::env`): shared
//! pages from the heap (`platform::shared_pages`, the unsafe part), grants
//! of them (by page, never by frame number) from the global table, event channels whose handler only counts (the
//! driver or service loop does the work in its own context, never the
//! upcall), and, for blkfront, waiting on that count with a deadline.
//!
//! Each environment has its own event counter: all the ports it binds
//! count into it, so a device (or the network service, for all its vifs)
//! wakes on its own events only.

use crate::xenbus::control::ShutdownRequest;
use crate::xenbus::{GuestBus, StoreEvents};
use crate::{blk, events, grants, timer, toolstack, xenbus};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use grant_tables::GrantError;
use hypercall::abi::grant_table::GrantRef;
use hypercall::{DomId, EvtchnPort};
use platform::shared_pages::SharedPages;
use pv_drivers::blkfront::{self, BlkEnv, Reconnected};
use pv_drivers::env::{EnvError, EventChannels, Grants, PageAlloc};
use xenstore_client::RingTransport;

/// Environments that can exist at once: the network service and up to
/// 16 disks, one event counter each.
const MAX_ENVS: usize = 17;
static EVENTS: [AtomicU64; MAX_ENVS] = [const { AtomicU64::new(0) }; MAX_ENVS];
static USED: spin::Mutex<[bool; MAX_ENVS]> = spin::Mutex::new([false; MAX_ENVS]);
/// The same events by the vCPU whose upcall took them: where a queue's
/// events really run (a blkfront queue bound to its vCPU).
static EVENTS_ON: [[AtomicU64; platform::smp::MAX_VCPUS]; MAX_ENVS] =
    [const { [const { AtomicU64::new(0) }; platform::smp::MAX_VCPUS] }; MAX_ENVS];

fn on_event(_: EvtchnPort, slot: usize) {
    let cpu = (platform::smp::current() as usize).min(platform::smp::MAX_VCPUS - 1);
    EVENTS_ON[slot][cpu].fetch_add(1, Ordering::Relaxed);
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

    /// Of those, the ones taken on vCPU `cpu`.
    pub fn on(self, cpu: u32) -> u64 {
        EVENTS_ON[self.0].get(cpu as usize).map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// One driver's environment: its event counter slot and the ports it
/// bound (closed when it is dropped).
pub struct KernelEnv {
    slot: usize,
    seen: u64,
    ports: Vec<EvtchnPort>,
    /// The store's event count at the last suspend point that looked.
    store_seen: u64,
}

impl KernelEnv {
    /// A new environment: a free event counter slot.
    pub fn new() -> Result<Self, EnvError> {
        let mut used = USED.lock();
        let slot =
            used.iter().position(|u| !u).ok_or(EnvError::TooManyDevices { max: MAX_ENVS })?;
        used[slot] = true;
        for c in &EVENTS_ON[slot] {
            c.store(0, Ordering::Relaxed);
        }
        Ok(KernelEnv {
            slot,
            seen: EVENTS[slot].load(Ordering::SeqCst),
            ports: Vec::new(),
            store_seen: 0,
        })
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

    fn notify_batched(&mut self, port: EvtchnPort) {
        // Owed instead while a service loop defers (events::owed).
        let _ = events::send_or_owe(port);
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

    type Store = crate::trace::xenstore::Traced<RingTransport<'static, StoreEvents>>;

    fn with_bus<R>(&mut self, f: impl FnOnce(&mut GuestBus) -> R) -> Option<R> {
        xenbus::with(f)
    }

    fn generation(&self) -> u64 {
        crate::suspend::counts().1
    }

    fn suspend_point(&mut self, in_flight: usize) {
        // Only when xenstored said something (or a request was kept for
        // this): most waits cost one atomic load here.
        let store = xenbus::store_events();
        if store == self.store_seen && !toolstack::has_deferred() {
            return;
        }
        self.store_seen = store;
        match toolstack::poll_request() {
            Some(ShutdownRequest::Suspend) => {
                crate::kprintln!("blk: suspend taken with {in_flight} request(s) in flight");
                if let Err(e) = crate::suspend::suspend() {
                    crate::kprintln!("blk: suspend failed: {e}; carrying on");
                }
            }
            Some(other) => toolstack::defer_request(other),
            None => {}
        }
    }

    fn split_off(&mut self, port: EvtchnPort) -> Result<Self, EnvError> {
        if !self.ports.contains(&port) {
            return Err(EnvError::Unsupported(
                "splitting off a port this environment did not bind",
            ));
        }
        let mut other = KernelEnv::new()?;
        // The same handler, counting into the new slot from the next
        // event on (one step under the table's lock: never a moment
        // without a handler).
        events::set_handler_data(port, other.slot).map_err(env_error)?;
        self.ports.retain(|&p| p != port);
        other.ports.push(port);
        Ok(other)
    }

    fn absorb(&mut self, mut other: Self) {
        for port in core::mem::take(&mut other.ports) {
            // A port of the domain before a restore has no handler any
            // more (events::resume): it only comes back to be forgotten.
            let _ = events::set_handler_data(port, self.slot);
            self.ports.push(port);
        }
    }

    fn reconnected(&mut self, what: &Reconnected) {
        crate::kprintln!(
            "blk: {}: reconnected to {} in the new domain in {} ms; {} request(s) that were in flight issued again (queues {} -> {})",
            blkfront::vbd_name(what.id.parse().unwrap_or(0)),
            what.backend,
            what.ms,
            what.reissued,
            what.queues.0,
            what.queues.1
        );
    }
}
