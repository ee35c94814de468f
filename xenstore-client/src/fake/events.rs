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
    /// Notifications still to be lost before one reaches the fake.
    lose_notifies: u32,
    /// The fake runs only when a notification reaches it (a xenstored
    /// asleep in `poll`), not whenever the client waits.
    only_when_notified: bool,
    /// The fake's notifications to the client are lost: a wait runs the
    /// fake but always sleeps to its deadline.
    lose_wakeups: bool,
}

impl<'a> FakeEvents<'a> {
    pub fn new(page: &'a XenstoreDomainInterface, server: &'a RefCell<FakeXenstored>) -> Self {
        server.borrow().attach(page);
        FakeEvents {
            page,
            server,
            now: Instant(0),
            pending: false,
            notifies: 0,
            waits: 0,
            lose_notifies: 0,
            only_when_notified: false,
            lose_wakeups: false,
        }
    }

    /// From now on the fake runs only when a notification reaches it, as
    /// xenstored asleep in `poll` does, and the next `n` notifications are
    /// lost on the way.
    pub fn lose_notifies(&mut self, n: u32) {
        self.only_when_notified = true;
        self.lose_notifies = n;
    }

    /// The fake answers only while the client sleeps, and its
    /// notifications never wake the client: every wait lasts until its
    /// deadline.
    pub fn lose_wakeups(&mut self) {
        self.lose_wakeups = true;
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
        if self.lose_notifies > 0 {
            self.lose_notifies -= 1;
            return;
        }
        if self.lose_wakeups {
            // xenstored will run, but only once the client sleeps.
            return;
        }
        if self.server.borrow_mut().serve(self.page) {
            self.pending = true;
        }
    }

    fn wait(&mut self, deadline: Option<Instant>) -> Result<(), TimedOut> {
        self.waits += 1;
        let pending = core::mem::take(&mut self.pending);
        let runs = !self.only_when_notified || self.lose_wakeups;
        let woken = (runs && self.server.borrow_mut().serve(self.page)) || pending;
        if woken && !self.lose_wakeups {
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
