//! Notifications a service loop owes its backends, sent in the trap that
//! puts the vCPU to sleep.
//!
//! A service loop's pass ends by publishing its TX requests (an ACK, an
//! answer) and, most of the time, by blocking until the next event. Sent
//! at once, the notification and the block are two traps into Xen (three
//! with a timer change). While a loop defers ([`defer_sends`]), the
//! drivers' batched notifications (`notify_batched`: netfront's TX
//! pushes; RX refills, which netback may be stalled on, go at once) are
//! only noted here, the same port once; the
//! block sends them in its own multicall ([`crate::timer`]), or the loop
//! sends them itself ([`send_owed`]) when it goes on without blocking.
//! Only a loop that ends every pass in one of the two may defer: the
//! backend hears nothing until then.

use super::{in_upcall, send, EventError, IrqLock};
use core::sync::atomic::{AtomicU64, Ordering};
use hypercall::EvtchnPort;
use platform::{TimerChange, MAX_CARRIED_SENDS};

/// One vCPU's owed ports.
#[derive(Clone, Copy)]
pub struct Owed {
    ports: [EvtchnPort; MAX_CARRIED_SENDS],
    len: usize,
}

impl Owed {
    const fn new() -> Self {
        Owed { ports: [EvtchnPort(0); MAX_CARRIED_SENDS], len: 0 }
    }

    /// The ports, each once.
    pub fn ports(&self) -> &[EvtchnPort] {
        &self.ports[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Notes `port`; false if it is full (the caller sends at once).
    fn note(&mut self, port: EvtchnPort) -> bool {
        if self.ports().contains(&port) {
            return true;
        }
        match self.ports.get_mut(self.len) {
            Some(slot) => {
                *slot = port;
                self.len += 1;
                true
            }
            None => false,
        }
    }
}

struct PerCpu {
    /// Nested [`defer_sends`] guards alive on this vCPU.
    depth: usize,
    owed: Owed,
}

const VCPUS: usize = platform::smp::MAX_VCPUS;
static CPUS: [IrqLock<PerCpu>; VCPUS] =
    [const { IrqLock::new(PerCpu { depth: 0, owed: Owed::new() }) }; VCPUS];
/// Notifications that made no trap of their own here: asked for while one
/// for the same port was owed already (the backend reads the whole ring
/// on one), or sent in one multicall with another.
static SAVED: AtomicU64 = AtomicU64::new(0);

fn here() -> &'static IrqLock<PerCpu> {
    &CPUS[(platform::smp::current() as usize).min(VCPUS - 1)]
}

/// While the guard lives, [`send_or_owe`] on this vCPU owes instead of
/// sending; dropping it sends what is owed.
pub struct DeferSends(());

/// Starts deferring this vCPU's driver notifications (see the module).
pub fn defer_sends() -> DeferSends {
    here().lock().depth += 1;
    DeferSends(())
}

impl Drop for DeferSends {
    fn drop(&mut self) {
        here().lock().depth -= 1;
        send_owed();
    }
}

/// A driver's notification: owed if this vCPU defers (outside an event
/// handler), else sent now.
pub fn send_or_owe(port: EvtchnPort) -> Result<(), EventError> {
    if !in_upcall() {
        let mut me = here().lock();
        if me.depth > 0 {
            let before = me.owed.len();
            if me.owed.note(port) {
                if me.owed.len() == before {
                    SAVED.fetch_add(1, Ordering::Relaxed);
                }
                return Ok(());
            }
        }
    }
    send(port)
}

/// Takes this vCPU's owed ports, for the caller to send (a block carries
/// them: [`crate::timer`]).
pub fn take_owed() -> Owed {
    core::mem::replace(&mut here().lock().owed, Owed::new())
}

/// Sends what this vCPU owes now: one trap for all of them (PV; PVH
/// makes each call alone, docs/exits.md).
pub fn send_owed() {
    let owed = take_owed();
    let ports = owed.ports();
    if ports.len() > 1 && !platform::is_pvh() {
        let vcpu = platform::smp::current();
        if hypercall::ops::multicall::send_and_block(vcpu, ports, TimerChange::Keep, false).is_ok()
        {
            super::count_sends(ports.len() as u64);
            SAVED.fetch_add(ports.len() as u64 - 1, Ordering::Relaxed);
            return;
        }
        // Xen ran none of it: one by one.
    }
    for &p in ports {
        let _ = send(p);
    }
}

/// Driver notifications so far that made no trap of their own: merged
/// into one owed for the same port, or sent in a multicall with others
/// (all vCPUs; those a block carried are [`crate::timer::carried`]'s).
pub fn saved() -> u64 {
    SAVED.load(Ordering::Relaxed)
}
