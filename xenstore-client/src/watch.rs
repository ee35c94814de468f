//! Watch events: what xenstored sends, unasked, when a watched node or one
//! below it changes. They arrive interleaved with replies, so the client
//! sets them aside in an [`EventQueue`] while it waits for a reply and hands
//! them out later in the order they came.

use alloc::collections::VecDeque;
use alloc::string::String;

/// One `XS_WATCH_EVENT`: the node that changed (relative if the watch was
/// registered with a relative path) and the token the watch was given.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WatchEvent {
    pub path: String,
    pub token: String,
}

/// Events not yet handed out, oldest first. Bounded: a guest that never
/// drains it must not run out of memory because dom0 writes a lot; the
/// oldest events are dropped and counted instead. Watches are "look again"
/// notices, so a consumer that sees [`EventQueue::lost`] grow re-reads the
/// nodes it cares about.
#[derive(Debug)]
pub struct EventQueue {
    events: VecDeque<WatchEvent>,
    cap: usize,
    lost: u64,
}

impl EventQueue {
    /// The default bound on queued events.
    pub const DEFAULT_CAP: usize = 1024;

    pub fn new(cap: usize) -> EventQueue {
        EventQueue { events: VecDeque::new(), cap: cap.max(1), lost: 0 }
    }

    pub fn push(&mut self, ev: WatchEvent) {
        if self.events.len() == self.cap {
            self.events.pop_front();
            self.lost += 1;
        }
        self.events.push_back(ev);
    }

    pub fn pop(&mut self) -> Option<WatchEvent> {
        self.events.pop_front()
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Events dropped because the queue was full, since it was made.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Forgets the queued events of a watch that was removed, so no event
    /// of it is handed out after `unwatch` returned.
    pub fn forget_token(&mut self, token: &str) {
        self.events.retain(|e| e.token != token);
    }

    /// Forgets every queued event (after `XS_RESET_WATCHES`).
    pub fn clear(&mut self) {
        self.events.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    fn ev(i: usize, token: &str) -> WatchEvent {
        WatchEvent { path: format!("p{i}"), token: token.into() }
    }

    #[test]
    fn keeps_order_and_drops_oldest_when_full() {
        let mut q = EventQueue::new(3);
        for i in 0..5 {
            q.push(ev(i, "t"));
        }
        assert_eq!(q.lost(), 2);
        assert_eq!(q.len(), 3);
        assert_eq!(q.pop(), Some(ev(2, "t")));
        assert_eq!(q.pop(), Some(ev(3, "t")));
        assert_eq!(q.pop(), Some(ev(4, "t")));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn forget_token_keeps_the_others_in_order() {
        let mut q = EventQueue::new(10);
        q.push(ev(0, "a"));
        q.push(ev(1, "b"));
        q.push(ev(2, "a"));
        q.push(ev(3, "b"));
        q.forget_token("a");
        assert_eq!(q.pop(), Some(ev(1, "b")));
        assert_eq!(q.pop(), Some(ev(3, "b")));
        assert!(q.is_empty());
    }
}
