//! [`RingEvents`] for host tests: "notifying" the fake runs it, "waiting"
//! runs it and, if nothing moved, lets the (virtual) clock run to the
//! deadline: a test never sleeps and never hangs.

use super::FakeXenstored;
use crate::ring_transport::{RingEvents, TimedOut};
use crate::types::Instant;
use core::cell::RefCell;
use core::time::Duration;
use hypercall::abi::xenstore::XenstoreDomainInterface;

/// The fake's side of the event channel. The fake sits in a `RefCell` so
/// the test can also reach it (as the toolstack) between client calls.
pub struct FakeEvents<'a> {
    page: &'a XenstoreDomainInterface,
    server: &'a RefCell<FakeXenstored>,
    now: Instant,
    /// The event channel's pending bit: xenstored notifies whenever it
    /// moved bytes, so a wait after that returns at once.
    pending: bool,
    notifies: u64,
    waits: u64,
}

impl<'a> FakeEvents<'a> {
    pub fn new(page: &'a XenstoreDomainInterface, server: &'a RefCell<FakeXenstored>) -> Self {
        server.borrow().attach(page);
        FakeEvents { page, server, now: Instant(0), pending: false, notifies: 0, waits: 0 }
    }

    /// Notifications the client sent.
    pub fn notifies(&self) -> u64 {
        self.notifies
    }

    /// Times the client waited.
    pub fn waits(&self) -> u64 {
        self.waits
    }

    /// Moves the virtual clock.
    pub fn advance(&mut self, d: Duration) {
        self.now = self.now.after(d);
    }
}

impl RingEvents for FakeEvents<'_> {
    fn notify(&mut self) {
        self.notifies += 1;
        if self.server.borrow_mut().serve(self.page) {
            self.pending = true;
        }
    }

    fn wait(&mut self, deadline: Option<Instant>) -> Result<(), TimedOut> {
        self.waits += 1;
        if core::mem::take(&mut self.pending) || self.server.borrow_mut().serve(self.page) {
            return Ok(());
        }
        // Nothing will ever happen now: a real guest would sleep until the
        // deadline (or forever without one, which a test must not do).
        if let Some(d) = deadline {
            self.now = self.now.max(d);
        }
        Err(TimedOut)
    }

    fn now(&self) -> Instant {
        self.now
    }
}
