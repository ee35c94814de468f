//! One direction of the store page's rings: the byte array and its two
//! free-running indices, written by one side and read by the other.
//!
//! The same code serves both ends (the guest produces `req` and consumes
//! `rsp`; the fake xenstored the reverse), so the host tests run the real
//! index arithmetic in both directions.
//!
//! Ordering follows Linux's `xb_write`/`xb_read` barriers, as atomics:
//! - producer: load `cons` with Acquire (the consumer is done with the
//!   bytes it released before we overwrite them), store the bytes, then
//!   store `prod` with Release (the bytes are visible before the index).
//! - consumer: load `prod` with Acquire (the bytes it covers are visible),
//!   copy them out, then store `cons` with Release (our reads are done
//!   before the producer may reuse the space).
//!
//! Each side only writes its own index; it reads it back Relaxed.

use crate::errors::RingError;
use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use hypercall::abi::xenstore::{XenstoreDomainInterface, RING_SIZE};

const MASK: u32 = RING_SIZE as u32 - 1;
const _: () = assert!(RING_SIZE.is_power_of_two());

/// One ring of the page, as seen by either end.
#[derive(Clone, Copy)]
pub struct Ring<'a> {
    data: &'a [AtomicU8; RING_SIZE],
    cons: &'a AtomicU32,
    prod: &'a AtomicU32,
}

impl<'a> Ring<'a> {
    /// The guest→xenstored ring.
    pub fn requests(page: &'a XenstoreDomainInterface) -> Ring<'a> {
        Ring { data: &page.req, cons: &page.req_cons, prod: &page.req_prod }
    }

    /// The xenstored→guest ring (replies and watch events).
    pub fn responses(page: &'a XenstoreDomainInterface) -> Ring<'a> {
        Ring { data: &page.rsp, cons: &page.rsp_cons, prod: &page.rsp_prod }
    }

    /// Bytes between `cons` and `prod`, refusing indices that claim more
    /// than the ring holds: copying by them would replay or skip data.
    fn used(cons: u32, prod: u32) -> Result<u32, RingError> {
        let used = prod.wrapping_sub(cons);
        if used as usize > RING_SIZE {
            return Err(RingError::BadIndices { cons, prod });
        }
        Ok(used)
    }

    /// Producer: copies as much of `bytes` as fits and publishes it.
    /// Returns how many bytes went in (0 when the ring is full).
    pub fn write(&self, bytes: &[u8]) -> Result<usize, RingError> {
        let cons = self.cons.load(Ordering::Acquire);
        let prod = self.prod.load(Ordering::Relaxed);
        let free = RING_SIZE - Self::used(cons, prod)? as usize;
        let n = bytes.len().min(free);
        for (i, &b) in bytes[..n].iter().enumerate() {
            let at = prod.wrapping_add(i as u32) & MASK;
            self.data[at as usize].store(b, Ordering::Relaxed);
        }
        if n > 0 {
            self.prod.store(prod.wrapping_add(n as u32), Ordering::Release);
        }
        Ok(n)
    }

    /// Consumer: copies out up to `buf.len()` published bytes and frees
    /// their space. Returns how many (0 when the ring is empty).
    pub fn read(&self, buf: &mut [u8]) -> Result<usize, RingError> {
        let prod = self.prod.load(Ordering::Acquire);
        let cons = self.cons.load(Ordering::Relaxed);
        let n = buf.len().min(Self::used(cons, prod)? as usize);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            let at = cons.wrapping_add(i as u32) & MASK;
            *b = self.data[at as usize].load(Ordering::Relaxed);
        }
        if n > 0 {
            self.cons.store(cons.wrapping_add(n as u32), Ordering::Release);
        }
        Ok(n)
    }

    /// Bytes published and not yet consumed.
    pub fn pending(&self) -> Result<usize, RingError> {
        let prod = self.prod.load(Ordering::Acquire);
        let cons = self.cons.load(Ordering::Acquire);
        Self::used(cons, prod).map(|u| u as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Rng;
    use alloc::vec;
    use alloc::vec::Vec;

    fn page_at(start: u32) -> XenstoreDomainInterface {
        let page = XenstoreDomainInterface::zeroed();
        for idx in [&page.req_cons, &page.req_prod, &page.rsp_cons, &page.rsp_prod] {
            idx.store(start, Ordering::Relaxed);
        }
        page
    }

    #[test]
    fn fills_then_refuses_then_drains() {
        let page = page_at(0);
        let r = Ring::requests(&page);
        assert_eq!(r.write(&[7; RING_SIZE + 10]), Ok(RING_SIZE));
        assert_eq!(r.write(&[1]), Ok(0), "full");
        let mut buf = vec![0; RING_SIZE + 10];
        assert_eq!(r.read(&mut buf), Ok(RING_SIZE));
        assert!(buf[..RING_SIZE].iter().all(|&b| b == 7));
        assert_eq!(r.read(&mut buf), Ok(0), "empty");
    }

    #[test]
    fn bad_indices_are_an_error_both_ways() {
        let page = page_at(0);
        page.rsp_prod.store(RING_SIZE as u32 + 1, Ordering::Relaxed);
        let r = Ring::responses(&page);
        let err = Err(RingError::BadIndices { cons: 0, prod: RING_SIZE as u32 + 1 });
        assert_eq!(r.read(&mut [0; 4]), err);
        assert_eq!(r.write(&[0; 4]), err);
        assert_eq!(r.pending(), err);
        // A consumer index ahead of the producer is as bad.
        page.rsp_prod.store(5, Ordering::Relaxed);
        page.rsp_cons.store(6, Ordering::Relaxed);
        assert!(r.read(&mut [0; 4]).is_err());
    }

    #[test]
    fn exactly_full_is_not_corrupt() {
        let page = page_at(u32::MAX - 3);
        page.req_prod.store((u32::MAX - 3).wrapping_add(RING_SIZE as u32), Ordering::Relaxed);
        let r = Ring::requests(&page);
        assert_eq!(r.pending(), Ok(RING_SIZE));
        assert_eq!(r.write(&[1]), Ok(0));
    }

    /// Property: whatever the start index (including across the u32
    /// wrap), whatever the chunk sizes on each side, the consumer reads
    /// exactly the bytes the producer wrote, in order, and never more than
    /// the ring holds is in flight.
    #[test]
    fn prop_wraparound_preserves_the_stream() {
        let mut rng = Rng::new(0x5eed_0001);
        for case in 0..400 {
            let start = match case % 4 {
                0 => 0,
                1 => u32::MAX - rng.below(2 * RING_SIZE as u64) as u32,
                2 => (RING_SIZE as u32) - rng.below(8) as u32,
                _ => rng.next_u64() as u32,
            };
            let page = page_at(start);
            let r = Ring::responses(&page);
            let total = rng.below(8 * RING_SIZE as u64) as usize;
            let input: Vec<u8> = (0..total).map(|_| rng.next_u64() as u8).collect();
            let (mut sent, mut out) = (0usize, Vec::new());
            while out.len() < total {
                if sent < total && rng.below(2) == 0 {
                    let chunk = 1 + rng.below(RING_SIZE as u64 + 50) as usize;
                    let end = (sent + chunk).min(total);
                    sent += r.write(&input[sent..end]).unwrap();
                } else {
                    let mut buf = vec![0; 1 + rng.below(RING_SIZE as u64 + 50) as usize];
                    let n = r.read(&mut buf).unwrap();
                    out.extend_from_slice(&buf[..n]);
                }
                let in_flight = r.pending().unwrap();
                assert!(in_flight <= RING_SIZE, "case {case}");
                assert_eq!(in_flight, sent - out.len(), "case {case}");
            }
            assert_eq!(out, input, "case {case}: start {start:#x}");
            assert_eq!(page.rsp_prod.load(Ordering::Relaxed), start.wrapping_add(total as u32));
        }
    }

    /// Property: the producer never overwrites bytes the consumer has not
    /// read, checked by tagging every byte with its stream position.
    #[test]
    fn prop_no_overwrite_of_unread_bytes() {
        let mut rng = Rng::new(0x5eed_0002);
        for _ in 0..200 {
            let page = page_at(rng.next_u64() as u32);
            let r = Ring::requests(&page);
            let mut next_tag = 0u8;
            let mut expect = 0u8;
            for _ in 0..50 {
                let want = rng.below(2 * RING_SIZE as u64) as usize;
                let bytes: Vec<u8> = (0..want).map(|i| next_tag.wrapping_add(i as u8)).collect();
                let n = r.write(&bytes).unwrap();
                next_tag = next_tag.wrapping_add(n as u8);
                let mut buf = vec![0; rng.below(RING_SIZE as u64) as usize];
                let got = r.read(&mut buf).unwrap();
                for &b in &buf[..got] {
                    assert_eq!(b, expect);
                    expect = expect.wrapping_add(1);
                }
            }
        }
    }
}
