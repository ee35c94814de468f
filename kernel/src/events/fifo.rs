//! The FIFO event channel ABI (`xen/include/public/event_channel.h`):
//! one 32-bit word per port in an event array, linked by Xen into 16
//! priority queues whose heads live in a per-vCPU control block.
//!
//! The consumer follows Xen's protocol: take the `ready` bitmap, walk each
//! ready queue from its head, clear each word's LINKED bit and link field
//! with a compare-and-swap (Xen may be appending to it), deliver it if it is
//! pending and unmasked.

use core::sync::atomic::{AtomicU32, Ordering};
use hypercall::abi::event_channel::{fifo, EvtchnFifoControlBlock};
use hypercall::EvtchnPort;

/// The event words, however they are laid out in pages.
pub trait EventWords {
    fn word(&self, port: EvtchnPort) -> Option<&AtomicU32>;
}

impl EventWords for [AtomicU32] {
    fn word(&self, port: EvtchnPort) -> Option<&AtomicU32> {
        self.get(port.0 as usize)
    }
}

/// Whether `port` is pending.
pub fn is_pending(words: &(impl EventWords + ?Sized), port: EvtchnPort) -> bool {
    words.word(port).is_some_and(|w| w.load(Ordering::Acquire) & fifo::PENDING != 0)
}

/// Clears `port`'s pending bit; returns whether it was set.
pub fn clear_pending(words: &(impl EventWords + ?Sized), port: EvtchnPort) -> bool {
    words
        .word(port)
        .is_some_and(|w| w.fetch_and(!fifo::PENDING, Ordering::SeqCst) & fifo::PENDING != 0)
}

/// Sets `port`'s MASKED bit.
pub fn mask(words: &(impl EventWords + ?Sized), port: EvtchnPort) {
    if let Some(w) = words.word(port) {
        w.fetch_or(fifo::MASKED, Ordering::SeqCst);
    }
}

/// Whether `port` is masked.
pub fn is_masked(words: &(impl EventWords + ?Sized), port: EvtchnPort) -> bool {
    words.word(port).is_some_and(|w| w.load(Ordering::Acquire) & fifo::MASKED != 0)
}

/// Clears LINKED and the link field, returning the link (the next port).
fn clear_linked(word: &AtomicU32) -> u32 {
    let mut w = word.load(Ordering::Acquire);
    loop {
        let new = w & !(fifo::LINKED | fifo::LINK_MASK);
        match word.compare_exchange_weak(w, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(old) => return old & fifo::LINK_MASK,
            Err(now) => w = now,
        }
    }
}

/// The guest's own position in each queue (Linux's per-CPU `q->head`).
#[derive(Debug, Default)]
pub struct FifoConsumer {
    heads: [u32; fifo::MAX_QUEUES],
    /// Heads or links naming a port beyond the event array: Xen (or a
    /// corrupted page) gave us nonsense; the queue is dropped.
    pub bad_links: u64,
}

impl FifoConsumer {
    pub const fn new() -> Self {
        Self { heads: [0; fifo::MAX_QUEUES], bad_links: 0 }
    }

    /// Delivers every pending, unmasked event that Xen queued, highest
    /// priority (queue 0) first.
    pub fn consume(
        &mut self,
        cb: &EvtchnFifoControlBlock,
        words: &(impl EventWords + ?Sized),
        mut dispatch: impl FnMut(EvtchnPort),
    ) {
        let mut ready = cb.ready.swap(0, Ordering::AcqRel);
        while ready != 0 {
            let q = ready.trailing_zeros() as usize;
            self.consume_one(cb, words, q, &mut ready, &mut dispatch);
            ready |= cb.ready.swap(0, Ordering::AcqRel);
        }
    }

    fn consume_one(
        &mut self,
        cb: &EvtchnFifoControlBlock,
        words: &(impl EventWords + ?Sized),
        q: usize,
        ready: &mut u32,
        dispatch: &mut impl FnMut(EvtchnPort),
    ) {
        let mut head = self.heads[q];
        if head == 0 {
            // Reached the tail last time: Xen may have started a new list.
            head = cb.head[q].load(Ordering::Acquire);
        }
        if head == 0 {
            *ready &= !(1 << q);
            return;
        }
        let port = EvtchnPort(head);
        let Some(word) = words.word(port) else {
            self.bad_links += 1;
            self.heads[q] = 0;
            *ready &= !(1 << q);
            return;
        };
        let next = clear_linked(word);
        if next == 0 {
            *ready &= !(1 << q);
        }
        let w = word.load(Ordering::Acquire);
        if w & fifo::PENDING != 0 && w & fifo::MASKED == 0 && clear_pending(words, port) {
            dispatch(port);
        }
        self.heads[q] = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Plays Xen's `evtchn_fifo_set_pending` for one vCPU.
    struct FakeXen {
        cb: EvtchnFifoControlBlock,
        words: Vec<AtomicU32>,
        tails: [u32; fifo::MAX_QUEUES],
        prio: Vec<usize>,
    }

    impl FakeXen {
        fn new(ports: usize) -> Self {
            FakeXen {
                cb: EvtchnFifoControlBlock::zeroed(),
                words: (0..ports).map(|_| AtomicU32::new(0)).collect(),
                tails: [0; fifo::MAX_QUEUES],
                prio: vec![fifo::PRIORITY_DEFAULT as usize; ports],
            }
        }

        fn raise(&mut self, port: u32) {
            let w = &self.words[port as usize];
            let old = w.fetch_or(fifo::PENDING, Ordering::SeqCst);
            if old & (fifo::MASKED | fifo::LINKED) != 0 {
                return;
            }
            w.fetch_or(fifo::LINKED, Ordering::SeqCst);
            let q = self.prio[port as usize];
            let tail = self.tails[q];
            // Append to the tail only while it is still linked (Xen's rule);
            // otherwise start a new list at the head.
            let linked = tail != 0 && {
                let t = &self.words[tail as usize];
                let tw = t.load(Ordering::SeqCst);
                tw & fifo::LINKED != 0
                    && t.compare_exchange(
                        tw,
                        (tw & !fifo::LINK_MASK) | port,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    )
                    .is_ok()
            };
            if !linked {
                self.cb.head[q].store(port, Ordering::SeqCst);
            }
            self.tails[q] = port;
            self.cb.ready.fetch_or(1 << q, Ordering::SeqCst);
        }

        fn drain(&self, c: &mut FifoConsumer) -> Vec<u32> {
            let mut got = vec![];
            c.consume(&self.cb, &self.words[..], |p| got.push(p.0));
            got
        }
    }

    #[test]
    fn delivers_in_queue_order_exactly_once() {
        let mut x = FakeXen::new(64);
        let mut c = FifoConsumer::default();
        for p in [5, 9, 3, 40] {
            x.raise(p);
        }
        x.raise(9); // already linked: coalesced
        assert_eq!(x.drain(&mut c), vec![5, 9, 3, 40]);
        assert!(x.drain(&mut c).is_empty());
        for p in [5, 9, 3, 40] {
            assert!(!is_pending(&x.words[..], EvtchnPort(p)));
        }
    }

    #[test]
    fn higher_priority_queues_first() {
        let mut x = FakeXen::new(64);
        x.prio[10] = 15;
        x.prio[11] = 0;
        x.prio[12] = 7;
        let mut c = FifoConsumer::default();
        for p in [10, 12, 11] {
            x.raise(p);
        }
        assert_eq!(x.drain(&mut c), vec![11, 12, 10]);
    }

    #[test]
    fn masked_events_stay_pending_until_unmasked() {
        let mut x = FakeXen::new(16);
        let mut c = FifoConsumer::default();
        mask(&x.words[..], EvtchnPort(4));
        x.raise(4);
        x.raise(6);
        assert_eq!(x.drain(&mut c), vec![6]);
        assert!(is_pending(&x.words[..], EvtchnPort(4)));
        assert!(is_masked(&x.words[..], EvtchnPort(4)));
    }

    #[test]
    fn events_raised_while_consuming_are_not_lost() {
        let mut x = FakeXen::new(128);
        let mut c = FifoConsumer::default();
        let mut total = vec![];
        for round in 0..50u32 {
            for p in 1..=((round % 7) + 1) {
                x.raise(p * 3 + round % 2);
            }
            total.extend(x.drain(&mut c));
        }
        // Every raise happened on a drained word, so each was delivered.
        let expected: usize = (0..50u32).map(|r| ((r % 7) + 1) as usize).sum();
        assert_eq!(total.len(), expected);
    }

    #[test]
    fn a_head_beyond_the_array_drops_the_queue() {
        let x = FakeXen::new(8);
        x.cb.head[3].store(1000, Ordering::SeqCst);
        x.cb.ready.store(1 << 3, Ordering::SeqCst);
        let mut c = FifoConsumer::default();
        assert!(x.drain(&mut c).is_empty());
        assert_eq!(c.bad_links, 1);
    }
}
