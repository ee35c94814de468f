//! A XenStore client plus the watch events set aside for later.

use alloc::collections::VecDeque;
use core::time::Duration;
use xenstore_client::{Client, Error, Instant, Transport, WatchEvent};

/// The client and the events nobody has taken yet.
pub struct Bus<T> {
    pub xs: Client<T>,
    stash: VecDeque<WatchEvent>,
}

impl<T: Transport> Bus<T> {
    pub fn new(xs: Client<T>) -> Self {
        Bus { xs, stash: VecDeque::new() }
    }

    /// The store's clock.
    pub fn now(&self) -> Instant {
        self.xs.now()
    }

    /// A deadline `d` from now.
    pub fn deadline(&self, d: Duration) -> Instant {
        self.now().after(d)
    }

    /// The next watch event of any token, oldest first.
    pub fn next_event(&mut self, deadline: Option<Instant>) -> Result<WatchEvent, Error> {
        match self.stash.pop_front() {
            Some(ev) => Ok(ev),
            None => self.xs.next_event(deadline),
        }
    }

    /// The next event for `token`; events for other tokens are kept, in
    /// order, for [`Bus::next_event`].
    pub fn next_event_for(
        &mut self,
        token: &str,
        deadline: Option<Instant>,
    ) -> Result<WatchEvent, Error> {
        if let Some(i) = self.stash.iter().position(|e| e.token == token) {
            return Ok(self.stash.remove(i).expect("index from position"));
        }
        loop {
            let ev = self.xs.next_event(deadline)?;
            if ev.token == token {
                return Ok(ev);
            }
            self.stash.push_back(ev);
        }
    }

    /// Events kept for later.
    #[cfg(test)]
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
}
