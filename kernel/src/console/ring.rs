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
    /// passed. Returns false on timeout.
    fn wait(&self, timeout_ns: u64) -> bool;
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
    /// How long a full ring may stay full before output is given up.
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
        let mut waited = 0u64;
        while !bytes.is_empty() {
            let n = self.write_some(bytes)?;
            if n > 0 {
                self.backend.notify();
                bytes = &bytes[n..];
                waited = 0;
                continue;
            }
            if waited >= self.stall_budget_ns {
                return Err(RingError::Stalled { written: total - bytes.len() });
            }
            self.backend.arm();
            if (self.in_flight()? as usize) < OUT_RING_SIZE {
                continue;
            }
            let slice = (self.stall_budget_ns - waited).min(100_000_000);
            self.backend.wait(slice);
            waited += slice;
        }
        Ok(())
    }

    /// Waits until the consumer has taken everything (or the budget runs out).
    pub fn flush(&self) -> Result<(), RingError> {
        let mut waited = 0u64;
        while self.in_flight()? != 0 {
            if waited >= self.stall_budget_ns {
                return Err(RingError::Stalled { written: 0 });
            }
            self.backend.arm();
            if self.in_flight()? == 0 {
                break;
            }
            let slice = (self.stall_budget_ns - waited).min(100_000_000);
            self.backend.wait(slice);
            waited += slice;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Plays xenconsoled: on every wait it consumes up to `per_wait` bytes.
    struct FakeConsoled<'a> {
        ring: &'a XenconsInterface,
        seen: RefCell<Vec<u8>>,
        per_wait: usize,
        notifications: RefCell<usize>,
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
        fn wait(&self, _timeout_ns: u64) -> bool {
            self.consume(self.per_wait);
            self.per_wait > 0
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
        let fake = FakeConsoled {
            ring: &ring,
            seen: RefCell::new(vec![]),
            per_wait: 700,
            notifications: RefCell::new(0),
        };
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
        let fake = FakeConsoled {
            ring: &ring,
            seen: RefCell::new(vec![]),
            per_wait: 0,
            notifications: RefCell::new(0),
        };
        let w = RingWriter::new(&ring, &fake, 300_000_000);
        let err = w.write_all(&pattern(OUT_RING_SIZE + 10)).unwrap_err();
        assert_eq!(err, RingError::Stalled { written: OUT_RING_SIZE });
        assert!(matches!(w.flush(), Err(RingError::Stalled { .. })));
    }

    #[test]
    fn corrupt_indices_are_refused() {
        let ring = XenconsInterface::zeroed();
        ring.out_cons.store(5000, Ordering::Relaxed);
        ring.out_prod.store(10, Ordering::Relaxed);
        let fake = FakeConsoled {
            ring: &ring,
            seen: RefCell::new(vec![]),
            per_wait: 1,
            notifications: RefCell::new(0),
        };
        let w = RingWriter::new(&ring, &fake, 1_000);
        assert_eq!(w.write_some(b"x"), Err(RingError::Corrupt { prod: 10, cons: 5000 }));
        assert_eq!(ring.out_prod.load(Ordering::Relaxed), 10, "nothing written to a corrupt ring");
    }

    #[test]
    fn partial_write_when_nearly_full() {
        let ring = XenconsInterface::zeroed();
        ring.out_prod.store(OUT_RING_SIZE as u32 - 3, Ordering::Relaxed);
        let fake = FakeConsoled {
            ring: &ring,
            seen: RefCell::new(vec![]),
            per_wait: 0,
            notifications: RefCell::new(0),
        };
        let w = RingWriter::new(&ring, &fake, 0);
        assert_eq!(w.write_some(b"hello").unwrap(), 3);
        assert_eq!(w.write_some(b"lo").unwrap(), 0);
    }
}
