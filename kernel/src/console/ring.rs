//! The guest side of the PV console ring (`xen/include/public/io/console.h`).
//!
//! The guest produces into `out` and `xenconsoled` consumes. Indices are
//! free-running; the producer publishes bytes with a release store of
//! `out_prod` (Xen's `wmb()` before the index update) and learns of the
//! consumer's progress with an acquire load of `out_cons`.

use core::sync::atomic::Ordering;
use hypercall::abi::console::{XenconsInterface, OUT_RING_SIZE};

/// What the writer needs from the outside world.
pub trait Backend {
    /// Tells the consumer that new bytes are in the ring.
    fn notify(&self);
    /// Forgets earlier notifications from the consumer, so that a [`wait`]
    /// after a fresh look at the ring sleeps only until the next one.
    ///
    /// [`wait`]: Backend::wait
    fn arm(&self);
    /// Waits until the consumer may have made progress, or `timeout_ns`
    /// passed. Returns false on timeout. May return early: the writer
    /// measures what it waited with [`now_ns`](Backend::now_ns).
    fn wait(&self, timeout_ns: u64) -> bool;
    /// The time now, in ns.
    fn now_ns(&self) -> u64;
}

/// Why output did not (all) reach the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The consumer made no progress within the wait budget.
    Stalled { written: usize },
    /// The indices say more bytes are in flight than the ring holds: the
    /// page was corrupted, so nothing more is written to it.
    Corrupt { prod: u32, cons: u32 },
}

/// Writes to one console ring.
pub struct RingWriter<'a, B> {
    ring: &'a XenconsInterface,
    backend: B,
    /// How long the consumer may make no progress before output is given
    /// up, measured with the backend's clock (a wait may end early).
    stall_budget_ns: u64,
}

const MASK: u32 = OUT_RING_SIZE as u32 - 1;
const _: () = assert!(OUT_RING_SIZE.is_power_of_two());

impl<'a, B: Backend> RingWriter<'a, B> {
    pub fn new(ring: &'a XenconsInterface, backend: B, stall_budget_ns: u64) -> Self {
        Self { ring, backend, stall_budget_ns }
    }

    /// Bytes produced but not yet consumed.
    pub fn in_flight(&self) -> Result<u32, RingError> {
        let cons = self.ring.out_cons.load(Ordering::Acquire);
        let prod = self.ring.out_prod.load(Ordering::Relaxed);
        let used = prod.wrapping_sub(cons);
        if used as usize > OUT_RING_SIZE {
            return Err(RingError::Corrupt { prod, cons });
        }
        Ok(used)
    }

    /// Copies as much of `bytes` as fits and publishes it. Returns how many
    /// bytes went in; does not notify.
    pub fn write_some(&self, bytes: &[u8]) -> Result<usize, RingError> {
        let used = self.in_flight()?;
        let prod = self.ring.out_prod.load(Ordering::Relaxed);
        let n = bytes.len().min(OUT_RING_SIZE - used as usize);
        for (i, &b) in bytes[..n].iter().enumerate() {
            let at = prod.wrapping_add(i as u32) & MASK;
            self.ring.output[at as usize].store(b, Ordering::Relaxed);
        }
        self.ring.out_prod.store(prod.wrapping_add(n as u32), Ordering::Release);
        Ok(n)
    }

    /// Writes all of `bytes`, waiting for the consumer while the ring is full.
    pub fn write_all(&self, mut bytes: &[u8]) -> Result<(), RingError> {
        let total = bytes.len();
        // When the consumer last made room (or we started waiting).
        let mut stalled_since = None;
        while !bytes.is_empty() {
            let n = self.write_some(bytes)?;
            if n > 0 {
                self.backend.notify();
                bytes = &bytes[n..];
                stalled_since = None;
                continue;
            }
            let now = self.backend.now_ns();
            let waited = now.saturating_sub(*stalled_since.get_or_insert(now));
            if waited >= self.stall_budget_ns {
                return Err(RingError::Stalled { written: total - bytes.len() });
            }
            self.backend.arm();
            if (self.in_flight()? as usize) < OUT_RING_SIZE {
                continue;
            }
            self.backend.wait((self.stall_budget_ns - waited).min(SLICE_NS));
        }
        Ok(())
    }

    /// Waits until the consumer has taken everything, or made no progress
    /// for the stall budget.
    pub fn flush(&self) -> Result<(), RingError> {
        let mut progress = (self.in_flight()?, self.backend.now_ns());
        loop {
            let left = self.in_flight()?;
            if left == 0 {
                return Ok(());
            }
            let now = self.backend.now_ns();
            if left < progress.0 {
                progress = (left, now);
            }
            let waited = now.saturating_sub(progress.1);
            if waited >= self.stall_budget_ns {
                return Err(RingError::Stalled { written: 0 });
            }
            self.backend.arm();
            if self.in_flight()? == 0 {
                return Ok(());
            }
            self.backend.wait((self.stall_budget_ns - waited).min(SLICE_NS));
        }
    }
}

/// The longest single wait, so a lost notification costs at most this.
const SLICE_NS: u64 = 100_000_000;

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};

    /// Plays xenconsoled: on every wait it consumes up to `per_wait` bytes
    /// (after `idle_waits` waits that consume nothing). A wait takes its
    /// whole timeout on the fake clock, or only `early_ns` if set (a poll
    /// that some other event ended).
    struct FakeConsoled<'a> {
        ring: &'a XenconsInterface,
        seen: RefCell<Vec<u8>>,
        per_wait: usize,
        notifications: RefCell<usize>,
        clock: Cell<u64>,
        early_ns: Option<u64>,
        idle_waits: Cell<usize>,
        waits: Cell<usize>,
    }

    fn fake(ring: &XenconsInterface, per_wait: usize) -> FakeConsoled<'_> {
        FakeConsoled {
            ring,
            seen: RefCell::new(vec![]),
            per_wait,
            notifications: RefCell::new(0),
            clock: Cell::new(0),
            early_ns: None,
            idle_waits: Cell::new(0),
            waits: Cell::new(0),
        }
    }

    impl FakeConsoled<'_> {
        fn consume(&self, max: usize) {
            let prod = self.ring.out_prod.load(Ordering::Acquire);
            let mut cons = self.ring.out_cons.load(Ordering::Relaxed);
            let mut n = 0;
            while cons != prod && n < max {
                let b = self.ring.output[(cons & MASK) as usize].load(Ordering::Relaxed);
                self.seen.borrow_mut().push(b);
                cons = cons.wrapping_add(1);
                n += 1;
            }
            self.ring.out_cons.store(cons, Ordering::Release);
        }
    }

    impl Backend for &FakeConsoled<'_> {
        fn notify(&self) {
            *self.notifications.borrow_mut() += 1;
        }
        fn arm(&self) {}
        fn wait(&self, timeout_ns: u64) -> bool {
            self.waits.set(self.waits.get() + 1);
            self.clock.set(self.clock.get() + self.early_ns.unwrap_or(timeout_ns));
            if self.idle_waits.get() > 0 {
                self.idle_waits.set(self.idle_waits.get() - 1);
                return false;
            }
            self.consume(self.per_wait);
            self.per_wait > 0
        }
        fn now_ns(&self) -> u64 {
            self.clock.get()
        }
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| b'a' + (i % 26) as u8).collect()
    }

    #[test]
    fn wraps_around_and_delivers_every_byte_in_order() {
        let ring = XenconsInterface::zeroed();
        // Start near the u32 wrap so both the ring and the index wrap.
        ring.out_prod.store(u32::MAX - 100, Ordering::Relaxed);
        ring.out_cons.store(u32::MAX - 100, Ordering::Relaxed);
        let fake = fake(&ring, 700);
        let w = RingWriter::new(&ring, &fake, 1_000_000_000);
        let data = pattern(3 * OUT_RING_SIZE + 123);
        w.write_all(&data).unwrap();
        w.flush().unwrap();
        assert_eq!(*fake.seen.borrow(), data);
        assert!(*fake.notifications.borrow() >= 4);
        assert_eq!(w.in_flight().unwrap(), 0);
    }

    #[test]
    fn a_stalled_consumer_gives_an_error_not_a_hang() {
        let ring = XenconsInterface::zeroed();
        let fake = fake(&ring, 0);
        let w = RingWriter::new(&ring, &fake, 300_000_000);
        let err = w.write_all(&pattern(OUT_RING_SIZE + 10)).unwrap_err();
        assert_eq!(err, RingError::Stalled { written: OUT_RING_SIZE });
        assert!(matches!(w.flush(), Err(RingError::Stalled { .. })));
    }

    /// Waits that some other event ends after 1 ms cost 1 ms of the
    /// budget, not a whole slice: 50 of them (50 ms) before the consumer
    /// wakes up are well within a 300 ms budget (counted in 100 ms slices
    /// they would have used it up three times over).
    #[test]
    fn early_wakeups_do_not_use_up_the_budget() {
        let ring = XenconsInterface::zeroed();
        let mut f = fake(&ring, 700);
        f.early_ns = Some(1_000_000);
        f.idle_waits.set(50);
        let w = RingWriter::new(&ring, &f, 300_000_000);
        let data = pattern(OUT_RING_SIZE + 10);
        w.write_all(&data).unwrap();
        f.idle_waits.set(50);
        w.flush().unwrap();
        assert_eq!(*f.seen.borrow(), data);
        assert!(f.waits.get() >= 100, "the consumer was idle for 100 waits");
        assert!(f.clock.get() < 300_000_000);
    }

    /// The budget runs on the clock: with waits that end early the writer
    /// still gives up once the consumer made no progress for the budget.
    #[test]
    fn a_stalled_consumer_is_given_up_after_the_budget_by_the_clock() {
        let ring = XenconsInterface::zeroed();
        let mut f = fake(&ring, 0);
        f.early_ns = Some(1_000_000);
        let w = RingWriter::new(&ring, &f, 300_000_000);
        let err = w.write_all(&pattern(OUT_RING_SIZE + 10)).unwrap_err();
        assert_eq!(err, RingError::Stalled { written: OUT_RING_SIZE });
        assert_eq!(f.clock.get(), 300_000_000);
        assert_eq!(f.waits.get(), 300);
        f.clock.set(0);
        assert!(matches!(w.flush(), Err(RingError::Stalled { .. })));
        assert_eq!(f.clock.get(), 300_000_000);
    }

    /// A consumer that keeps making progress, however slowly, is waited
    /// for: the budget is for no progress at all.
    #[test]
    fn flush_waits_for_a_slow_consumer_that_keeps_going() {
        let ring = XenconsInterface::zeroed();
        let f = fake(&ring, 3);
        let w = RingWriter::new(&ring, &f, 300_000_000);
        let data = pattern(100);
        w.write_all(&data).unwrap();
        w.flush().unwrap();
        assert_eq!(*f.seen.borrow(), data);
        assert!(f.clock.get() > 300_000_000, "longer than the budget in all");
    }

    #[test]
    fn corrupt_indices_are_refused() {
        let ring = XenconsInterface::zeroed();
        ring.out_cons.store(5000, Ordering::Relaxed);
        ring.out_prod.store(10, Ordering::Relaxed);
        let fake = fake(&ring, 1);
        let w = RingWriter::new(&ring, &fake, 1_000);
        assert_eq!(w.write_some(b"x"), Err(RingError::Corrupt { prod: 10, cons: 5000 }));
        assert_eq!(ring.out_prod.load(Ordering::Relaxed), 10, "nothing written to a corrupt ring");
    }

    #[test]
    fn partial_write_when_nearly_full() {
        let ring = XenconsInterface::zeroed();
        ring.out_prod.store(OUT_RING_SIZE as u32 - 3, Ordering::Relaxed);
        let fake = fake(&ring, 0);
        let w = RingWriter::new(&ring, &fake, 0);
        assert_eq!(w.write_some(b"hello").unwrap(), 3);
        assert_eq!(w.write_some(b"lo").unwrap(), 0);
    }
}
