//! A XenStore client plus the watch events set aside for later.
//!
//! Watch events are "look again" notices and may be lost: the client drops
//! the oldest when its queue is full ([`Client::events_lost`]), and so does
//! the bus's own stash, under the same cap. A lost event must not mean a
//! lost request (a `control/shutdown` nobody reads), so the bus remembers
//! every watch registered through it and, when it sees that events were
//! lost, hands out one event per watch, as xenstored does when a watch is
//! registered: every consumer then re-reads what it watches
//! (docs/hardening.md).

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;
use xenstore_client::{Client, Error, EventQueue, Instant, Transport, WatchEvent};

/// Most events the stash keeps (the client's own queue has the same cap).
pub const STASH_CAP: usize = EventQueue::DEFAULT_CAP;

/// The client and the events nobody has taken yet.
pub struct Bus<T> {
    pub xs: Client<T>,
    stash: VecDeque<WatchEvent>,
    /// Events the stash dropped because it was full.
    stash_lost: u64,
    /// [`Bus::events_lost`] when it was last acted upon.
    lost_seen: u64,
    /// Times lost events made every watch fire again.
    refires: u64,
    /// Watches registered through the bus: `(path, token)`.
    watches: Vec<(String, String)>,
    reconnects: u64,
}

impl<T: Transport> Bus<T> {
    pub fn new(xs: Client<T>) -> Self {
        Bus {
            xs,
            stash: VecDeque::new(),
            stash_lost: 0,
            lost_seen: 0,
            refires: 0,
            watches: Vec::new(),
            reconnects: 0,
        }
    }

    /// The store's clock.
    pub fn now(&self) -> Instant {
        self.xs.now()
    }

    /// A deadline `d` from now.
    pub fn deadline(&self, d: Duration) -> Instant {
        self.now().after(d)
    }

    /// Registers a watch (see [`Client::watch`]) and remembers it, so lost
    /// events make it fire again.
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), Error> {
        self.xs.watch(path, token)?;
        self.note_watch(path, token);
        Ok(())
    }

    /// Remembers a watch registered another way (a pipelined `XS_WATCH`),
    /// here and in the client (which registers them all again after a
    /// restore: [`Client::rewatch_all`]).
    pub fn note_watch(&mut self, path: &str, token: &str) {
        self.xs.remember_watch(path, token);
        if !self.watches.iter().any(|(p, t)| p == path && t == token) {
            self.watches.push((path.into(), token.into()));
        }
    }

    /// Removes a watch; its stashed events go too.
    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), Error> {
        self.watches.retain(|(p, t)| !(p == path && t == token));
        self.stash.retain(|e| e.token != token);
        self.xs.unwatch(path, token)
    }

    /// Events dropped so far, by the client's queue or the stash.
    pub fn events_lost(&self) -> u64 {
        self.xs.events_lost() + self.stash_lost
    }

    /// Times lost events made every watch fire again.
    pub fn refires(&self) -> u64 {
        self.refires
    }

    fn stash_push(&mut self, ev: WatchEvent) {
        if self.stash.len() >= STASH_CAP {
            self.stash.pop_front();
            self.stash_lost += 1;
        }
        self.stash.push_back(ev);
    }

    /// If events were lost since the last look, queues one event per
    /// remembered watch at the front (replacing stashed ones of the same
    /// token, which it supersedes).
    fn refire_if_lost(&mut self) {
        let lost = self.events_lost();
        if lost == self.lost_seen {
            return;
        }
        self.lost_seen = lost;
        self.refires += 1;
        for (path, token) in self.watches.iter().rev() {
            self.stash.retain(|e| e.token != *token);
            self.stash.push_front(WatchEvent { path: path.clone(), token: token.clone() });
        }
        while self.stash.len() > STASH_CAP {
            // Only possible with more watches than the cap: the newest
            // ordinary events go, the re-fired ones stay.
            self.stash.pop_back();
        }
    }

    /// The next watch event of any token, oldest first.
    pub fn next_event(&mut self, deadline: Option<Instant>) -> Result<WatchEvent, Error> {
        self.refire_if_lost();
        match self.stash.pop_front() {
            Some(ev) => Ok(ev),
            None => {
                let ev = self.xs.next_event(deadline)?;
                // Taking this one may have been what overflowed the queue.
                if self.events_lost() != self.lost_seen {
                    self.stash_push(ev);
                    self.refire_if_lost();
                    return Ok(self.stash.pop_front().expect("just pushed"));
                }
                Ok(ev)
            }
        }
    }

    /// The next event for `token`; events for other tokens are kept, in
    /// order and under [`STASH_CAP`], for [`Bus::next_event`].
    pub fn next_event_for(
        &mut self,
        token: &str,
        deadline: Option<Instant>,
    ) -> Result<WatchEvent, Error> {
        self.refire_if_lost();
        if let Some(i) = self.stash.iter().position(|e| e.token == token) {
            return Ok(self.stash.remove(i).expect("index from position"));
        }
        loop {
            let ev = self.xs.next_event(deadline)?;
            if ev.token == token {
                return Ok(ev);
            }
            self.stash_push(ev);
        }
    }

    /// If the connection to xenstored is broken (bogus ring indices, a
    /// malformed message, xenstored's own error report), resets it with
    /// the reconnection protocol and registers every remembered watch
    /// again; each then fires once, so every consumer re-reads what it
    /// watches (a `control/shutdown` written meanwhile included).
    /// `None` when the connection was fine.
    pub fn recover_if_broken(&mut self, timeout: Duration) -> Option<Result<(), Error>> {
        if !self.xs.transport().is_broken() {
            return None;
        }
        let deadline = Some(self.deadline(timeout));
        Some(self.recover(deadline))
    }

    fn recover(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        self.xs.reconnect(deadline)?;
        self.stash.clear();
        self.reconnects += 1;
        for (path, token) in self.watches.clone() {
            self.xs.watch(&path, &token)?;
        }
        Ok(())
    }

    /// Times the connection was reset by [`Bus::recover_if_broken`].
    pub fn reconnects(&self) -> u64 {
        self.reconnects
    }

    /// Events kept for later.
    pub fn stashed(&self) -> usize {
        self.stash.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xenstore_client::fake::Harness;
    use xenstore_client::Store;

    #[test]
    fn events_for_other_tokens_wait_their_turn() {
        let h = Harness::new(hypercall::DomId(5));
        let mut bus = Bus::new(h.client());
        bus.xs.write("a", b"1").unwrap();
        bus.xs.write("b", b"1").unwrap();
        bus.xs.watch("a", "ta").unwrap();
        bus.xs.watch("b", "tb").unwrap();
        // Registering a watch fires it once: drain those.
        let mut first =
            vec![bus.next_event(None).unwrap().token, bus.next_event(None).unwrap().token];
        first.sort();
        assert_eq!(first, ["ta", "tb"]);

        bus.xs.write("a", b"2").unwrap();
        bus.xs.write("b", b"2").unwrap();
        let far = Some(bus.deadline(Duration::from_secs(1)));
        assert_eq!(bus.next_event_for("tb", far).unwrap().token, "tb");
        assert_eq!(bus.stashed(), 1);
        assert_eq!(bus.next_event(far).unwrap().token, "ta");
    }

    /// Makes dom0 write `n` distinct nodes below `dir`.
    fn flood(h: &Harness, dir: &str, n: usize) {
        let mut fake = h.fake();
        let base = fake.abs(dir);
        for i in 0..n {
            fake.write_as(hypercall::DomId(0), &format!("{base}/n{i}"), b"x").unwrap();
        }
    }

    /// Issue 18 item 3: the client's queue is full, so the one event that
    /// said `control/shutdown` changed is dropped; before, nothing ever
    /// looked at that node again. Now the loss makes every watch fire.
    #[test]
    fn a_lost_event_makes_every_watch_fire_again() {
        use xenstore_client::fake::EventFate;
        let h = Harness::new(hypercall::DomId(5));
        let mut bus = Bus::new(h.client());
        bus.xs.set_event_queue_cap(8);
        bus.xs.write("control/shutdown", b"").unwrap();
        bus.xs.write("device", b"").unwrap();
        bus.watch("control/shutdown", "shutdown").unwrap();
        bus.watch("device", "dev").unwrap();
        let now = Some(bus.now());
        while bus.next_event(now).is_ok() {}
        assert_eq!(bus.events_lost(), 0);

        h.fake().set_event_filter(|_, _| EventFate::Hold);
        let path = h.fake().abs("control/shutdown");
        h.fake().write_as(hypercall::DomId(0), &path, b"poweroff").unwrap();
        flood(&h, "device", 40);
        h.fake().clear_event_filter();
        h.fake().release_held();
        // A request while the events arrive: the client queues them all
        // while it waits for its reply, and drops the oldest past its cap.
        bus.xs.read_opt("device").unwrap();

        let mut tokens = Vec::new();
        let far = Some(bus.deadline(Duration::from_millis(200)));
        while let Ok(ev) = bus.next_event(far) {
            tokens.push(ev.token);
            if tokens.len() > 100 {
                break;
            }
        }
        assert!(bus.events_lost() > 0, "the flood overflowed nothing");
        assert!(tokens.iter().any(|t| t == "shutdown"), "shutdown never seen again: {tokens:?}");
        assert_eq!(bus.refires(), 1);
    }

    /// Issue 18 item 3: `next_event_for` stashed every other event with no
    /// bound (a backend writing in a loop while the guest waits for one
    /// node grew the heap without limit).
    #[test]
    fn the_stash_is_bounded_and_its_losses_count() {
        let h = Harness::new(hypercall::DomId(5));
        let mut bus = Bus::new(h.client());
        bus.xs.write("w", b"").unwrap();
        bus.xs.write("other", b"").unwrap();
        bus.watch("w", "w").unwrap();
        bus.watch("other", "other").unwrap();
        let now = Some(bus.now());
        while bus.next_event(now).is_ok() {}
        let base = h.fake().abs("other");
        let mut wrote = 0;
        for round in 0..6 {
            for i in 0..400 {
                h.fake()
                    .write_as(hypercall::DomId(0), &format!("{base}/r{round}x{i}"), b"x")
                    .unwrap();
                wrote += 1;
            }
            // Waiting for "w", which dom0 never writes: everything else is
            // stashed. Once some were dropped, "w" fires again (a re-read).
            let soon = Some(bus.deadline(Duration::from_millis(1)));
            while let Ok(ev) = bus.next_event_for("w", soon) {
                assert_eq!(ev.token, "w");
                assert!(bus.events_lost() > 0 && bus.refires() > 0);
            }
            assert!(bus.stashed() <= STASH_CAP, "{} stashed", bus.stashed());
        }
        assert!(wrote > STASH_CAP);
        assert!(bus.events_lost() > 0);
        // The last round's losses re-fire both watches, which supersede
        // every stashed event of their tokens: two events, then none.
        let next = |bus: &mut Bus<_>| bus.next_event(Some(bus.now())).map(|e| e.token);
        assert_eq!([next(&mut bus), next(&mut bus)], [Ok("w".into()), Ok("other".into())]);
        assert_eq!(next(&mut bus), Err(Error::TimedOut));
    }

    /// Issue 18 item 3: bogus ring indices broke the transport for good,
    /// and the guest could no longer see `xl shutdown`. Now the bus resets
    /// the ring (reconnection protocol), watches again, and the request
    /// written meanwhile is seen.
    #[test]
    fn bogus_ring_indices_are_survived_by_reconnecting() {
        let h = Harness::new(hypercall::DomId(5));
        let mut bus = Bus::new(h.client());
        bus.xs.write("control/shutdown", b"").unwrap();
        bus.watch("control/shutdown", "shutdown").unwrap();
        let now = Some(bus.now());
        while bus.next_event(now).is_ok() {}
        assert_eq!(bus.recover_if_broken(Duration::from_secs(1)), None);

        h.fake().corrupt_rsp_indices(&h.page);
        let e = bus.xs.read_opt("control/shutdown").unwrap_err();
        assert!(matches!(e, Error::Ring(_)), "{e:?}");
        assert!(bus.xs.transport().is_broken());
        // The toolstack asks meanwhile.
        let path = h.fake().abs("control/shutdown");
        h.fake().write_as(hypercall::DomId(0), &path, b"poweroff").unwrap();

        assert_eq!(bus.recover_if_broken(Duration::from_secs(1)), Some(Ok(())));
        assert_eq!(h.fake().reconnections(), 1);
        assert_eq!(bus.reconnects(), 1);
        let ev = bus.next_event(Some(bus.deadline(Duration::from_secs(1)))).unwrap();
        assert_eq!(ev.token, "shutdown");
        assert_eq!(bus.xs.read_opt("control/shutdown").unwrap().as_deref(), Some(&b"poweroff"[..]));
    }

    /// Without the reconnection feature the reset is refused, clearly.
    #[test]
    fn without_the_feature_the_reset_is_refused_with_a_reason() {
        let h = Harness::new(hypercall::DomId(5));
        h.fake().config_mut().reconnection = false;
        let mut bus = Bus::new(h.client());
        bus.xs.write("x", b"").unwrap();
        h.fake().corrupt_rsp_indices(&h.page);
        assert!(bus.xs.read_opt("x").is_err());
        assert_eq!(
            bus.recover_if_broken(Duration::from_secs(1)),
            Some(Err(Error::Ring(xenstore_client::RingError::NoReconnect)))
        );
    }
}
