//! The two moves a granting guest makes on memory Xen shares with it:
//! publishing an entry and revoking it (`grant_table.h`, "Introducing a
//! valid entry" / "Invalidating an unused GTF_permit_access entry").
//!
//! v1: Xen keeps `GTF_reading`/`GTF_writing` in the entry's own flags and
//! sets them with a compare-and-swap that also checks the type bits and
//! `domid`. So revoking is a compare-and-swap of the flags to 0 that only
//! succeeds while neither bit is set: once it succeeds, Xen's own
//! compare-and-swap fails and no new mapping can start; if it fails with a
//! bit set, a mapping exists and the page must not be reused.
//!
//! v2: Xen keeps the bits in a separate status array. Xen sets status
//! first, then (full barrier) re-reads the entry; the guest clears the
//! entry's flags first, then (full barrier) reads the status. One of the
//! two must see the other's write, so a revoke that reads a clear status
//! cannot race with a mapping that is about to succeed.
//!
//! The functions are generic over the atomics so that the same code runs
//! on Xen's memory (`core` atomics) and in the loom model of the race.

use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};
use hypercall::abi::grant_table::{gtf, GrantEntryV1, GrantEntryV2};
use hypercall::{DomId, Mfn};

// The full barrier of the v2 protocol, as loom sees it in the model.
#[cfg(not(all(test, loom)))]
use core::sync::atomic::fence;
#[cfg(all(test, loom))]
use loom::sync::atomic::fence;

/// A 16-bit atomic word (Xen's memory, or loom's model of it).
pub trait Atomic16 {
    fn load(&self, order: Ordering) -> u16;
    fn store(&self, val: u16, order: Ordering);
    fn compare_exchange(
        &self,
        current: u16,
        new: u16,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u16, u16>;
    fn fetch_and(&self, val: u16, order: Ordering) -> u16;
}

/// A word that holds a frame number.
pub trait AtomicFrame {
    fn store(&self, val: u64, order: Ordering);
    fn load(&self, order: Ordering) -> u64;
}

/// The fields of a v1 entry.
pub trait EntryV1 {
    type Word: Atomic16;
    type Frame: AtomicFrame;
    fn flags(&self) -> &Self::Word;
    fn domid(&self) -> &Self::Word;
    fn frame(&self) -> &Self::Frame;
}

/// The fields of a v2 entry that this guest writes (`full_page`).
pub trait EntryV2 {
    type Word: Atomic16;
    type Frame: AtomicFrame;
    fn flags(&self) -> &Self::Word;
    fn domid(&self) -> &Self::Word;
    fn frame(&self) -> &Self::Frame;
}

/// How an entry grants access.
fn grant_flags(readonly: bool) -> u16 {
    gtf::PERMIT_ACCESS | if readonly { gtf::READONLY } else { 0 }
}

/// Bits that say another domain is using the page.
pub const IN_USE: u16 = gtf::READING | gtf::WRITING;

/// Publishes a v1 grant in Xen's order: `domid`, `frame`, then `flags`
/// with Release, so a peer that sees the flags sees the target too. The
/// entry must be unused (flags 0): the caller owns it through the
/// allocator.
///
/// # Panics
/// If `frame` does not fit the 32 bits of a v1 entry (the table checks
/// before it publishes: [`GrantError::FrameTooLarge`](crate::GrantError)).
#[inline(always)]
pub fn publish_v1<E: EntryV1>(e: &E, domid: DomId, frame: Mfn, readonly: bool) {
    assert!(frame.0 <= u64::from(u32::MAX), "{frame:?} does not fit a v1 grant entry");
    e.domid().store(domid.0, Ordering::Relaxed);
    e.frame().store(frame.0, Ordering::Relaxed);
    e.flags().store(grant_flags(readonly), Ordering::Release);
}

/// Revokes a v1 grant. `Err(flags)` while the peer has the page mapped
/// (`GTF_reading`/`GTF_writing`): the entry stays valid and the page must
/// stay out of use. `Ok` means no mapping exists and none can start;
/// Acquire on success orders the caller's reuse of the page after the
/// peer's last access (Xen clears the bits after unmapping).
#[inline(always)]
pub fn revoke_v1<E: EntryV1>(e: &E) -> Result<(), u16> {
    let mut flags = e.flags().load(Ordering::Acquire);
    loop {
        if flags & IN_USE != 0 {
            return Err(flags);
        }
        match e.flags().compare_exchange(flags, 0, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(()),
            Err(now) => flags = now,
        }
    }
}

/// Publishes a v2 full-page grant: `domid`, `frame`, then flags (Release).
pub fn publish_v2<E: EntryV2>(e: &E, domid: DomId, frame: Mfn, readonly: bool) {
    e.domid().store(domid.0, Ordering::Relaxed);
    e.frame().store(frame.0, Ordering::Relaxed);
    e.flags().store(grant_flags(readonly), Ordering::Release);
}

/// Revokes a v2 grant: the entry is disabled at once (no new mapping can
/// start); `Err(status)` while a mapping still exists, and the caller
/// calls again later. Idempotent.
pub fn revoke_v2<E: EntryV2, S: Atomic16>(e: &E, status: &S) -> Result<(), u16> {
    e.flags().store(0, Ordering::Relaxed);
    // Xen: set status, full barrier, re-check flags. Guest: clear flags,
    // full barrier, check status. One sees the other.
    fence(Ordering::SeqCst);
    let s = status.load(Ordering::Acquire);
    if s & IN_USE != 0 {
        Err(s)
    } else {
        Ok(())
    }
}

/// Whether a v1 entry is unused (the allocator's view must agree).
pub fn is_free_v1<E: EntryV1>(e: &E) -> bool {
    e.flags().load(Ordering::Relaxed) == 0
}

impl Atomic16 for AtomicU16 {
    fn load(&self, order: Ordering) -> u16 {
        AtomicU16::load(self, order)
    }
    fn store(&self, val: u16, order: Ordering) {
        AtomicU16::store(self, val, order)
    }
    fn compare_exchange(&self, c: u16, n: u16, s: Ordering, f: Ordering) -> Result<u16, u16> {
        AtomicU16::compare_exchange(self, c, n, s, f)
    }
    fn fetch_and(&self, val: u16, order: Ordering) -> u16 {
        AtomicU16::fetch_and(self, val, order)
    }
}

impl AtomicFrame for AtomicU32 {
    fn store(&self, val: u64, order: Ordering) {
        AtomicU32::store(self, val as u32, order)
    }
    fn load(&self, order: Ordering) -> u64 {
        u64::from(AtomicU32::load(self, order))
    }
}

impl AtomicFrame for AtomicU64 {
    fn store(&self, val: u64, order: Ordering) {
        AtomicU64::store(self, val, order)
    }
    fn load(&self, order: Ordering) -> u64 {
        AtomicU64::load(self, order)
    }
}

impl EntryV1 for GrantEntryV1 {
    type Word = AtomicU16;
    type Frame = AtomicU32;
    fn flags(&self) -> &AtomicU16 {
        &self.flags
    }
    fn domid(&self) -> &AtomicU16 {
        &self.domid
    }
    fn frame(&self) -> &AtomicU32 {
        &self.frame
    }
}

impl EntryV2 for GrantEntryV2 {
    type Word = AtomicU16;
    type Frame = AtomicU64;
    fn flags(&self) -> &AtomicU16 {
        &self.hdr.flags
    }
    fn domid(&self) -> &AtomicU16 {
        &self.hdr.domid
    }
    fn frame(&self) -> &AtomicU64 {
        &self.frame
    }
}

/// A model of Xen's side, for tests: what `map_grant_ref` and
/// `unmap_grant_ref` do to an entry (`xen/common/grant_table.c`,
/// `_set_status_v1` / `_set_status_v2` and the unmap path).
#[cfg(any(test, loom))]
pub mod peer {
    use super::*;

    /// v1 map: compare-and-swap the flags, checking type, permission and
    /// that the grant is for `domid`. Returns whether the map succeeded.
    pub fn map_v1<E: EntryV1>(e: &E, domid: DomId, write: bool) -> bool {
        let mut flags = e.flags().load(Ordering::Acquire);
        loop {
            if flags & gtf::TYPE_MASK != gtf::PERMIT_ACCESS
                || e.domid().load(Ordering::Relaxed) != domid.0
                || (write && flags & gtf::READONLY != 0)
            {
                return false;
            }
            let new = flags | gtf::READING | if write { gtf::WRITING } else { 0 };
            match e.flags().compare_exchange(flags, new, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(now) => flags = now,
            }
        }
    }

    /// v1 unmap of the last mapping: clear the bits (Release, so the
    /// guest's Acquire sees every access made through the mapping).
    pub fn unmap_v1<E: EntryV1>(e: &E) {
        e.flags().fetch_and(!IN_USE, Ordering::Release);
    }

    /// v2 map: set status, full barrier, re-check the entry; back out if
    /// it was revoked meanwhile.
    pub fn map_v2<E: EntryV2, S: Atomic16>(e: &E, status: &S, domid: DomId, write: bool) -> bool {
        let flags = e.flags().load(Ordering::Acquire);
        if flags & gtf::TYPE_MASK != gtf::PERMIT_ACCESS
            || e.domid().load(Ordering::Relaxed) != domid.0
        {
            return false;
        }
        let bits = gtf::READING | if write { gtf::WRITING } else { 0 };
        // Xen sets the status bits with a plain store of the combined value.
        let old = status.load(Ordering::Relaxed);
        status.store(old | bits, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let again = e.flags().load(Ordering::Acquire);
        if again != flags || e.domid().load(Ordering::Relaxed) != domid.0 {
            status.fetch_and(!bits, Ordering::Release);
            return false;
        }
        true
    }

    pub fn unmap_v2<S: Atomic16>(status: &S) {
        status.fetch_and(!IN_USE, Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use hypercall::abi::grant_table::GrantEntryV1;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn publish_writes_the_target_then_the_flags() {
        let e = GrantEntryV1::default();
        publish_v1(&e, DomId(7), Mfn(0x1234), true);
        assert_eq!(e.domid.load(Ordering::Relaxed), 7);
        assert_eq!(e.frame.load(Ordering::Relaxed), 0x1234);
        assert_eq!(e.flags.load(Ordering::Relaxed), gtf::PERMIT_ACCESS | gtf::READONLY);
    }

    #[test]
    #[should_panic(expected = "does not fit a v1 grant entry")]
    fn publish_v1_refuses_a_frame_beyond_32_bits() {
        publish_v1(&GrantEntryV1::default(), DomId(7), Mfn(1 << 32), false);
    }

    #[test]
    fn revoke_is_refused_while_mapped_and_allowed_after() {
        let e = GrantEntryV1::default();
        publish_v1(&e, DomId(3), Mfn(99), false);
        assert!(peer::map_v1(&e, DomId(3), true));
        assert_eq!(revoke_v1(&e), Err(gtf::PERMIT_ACCESS | gtf::READING | gtf::WRITING));
        peer::unmap_v1(&e);
        assert_eq!(revoke_v1(&e), Ok(()));
        assert!(is_free_v1(&e));
        // Revoked: the peer can no longer map it.
        assert!(!peer::map_v1(&e, DomId(3), false));
    }

    #[test]
    fn the_peer_checks_domid_and_read_only() {
        let e = GrantEntryV1::default();
        publish_v1(&e, DomId(3), Mfn(99), true);
        assert!(!peer::map_v1(&e, DomId(4), false), "another domain");
        assert!(!peer::map_v1(&e, DomId(3), true), "write to a read-only grant");
        assert!(peer::map_v1(&e, DomId(3), false));
        assert_eq!(revoke_v1(&e), Err(gtf::PERMIT_ACCESS | gtf::READONLY | gtf::READING));
    }

    #[test]
    fn v2_revoke_disables_at_once_and_waits_for_the_status() {
        let e = GrantEntryV2::default();
        let status = AtomicU16::new(0);
        publish_v2(&e, DomId(5), Mfn(0x1_0000_0000), false);
        assert!(peer::map_v2(&e, &status, DomId(5), true));
        assert!(revoke_v2(&e, &status).is_err());
        assert!(!peer::map_v2(&e, &status, DomId(5), false), "no new mapping after revoke");
        peer::unmap_v2(&status);
        assert_eq!(revoke_v2(&e, &status), Ok(()));
    }

    /// Blocks until the peer has finished `after + 2` map attempts: the
    /// attempt under way when `after` was read may have started before the
    /// caller's last move, the next one started after it.
    fn wait_for_attempt(attempts: &AtomicU64, after: u64) {
        while attempts.load(Ordering::SeqCst) < after + 2 {
            std::thread::yield_now();
        }
    }

    /// The race with real threads: a peer maps and unmaps as fast as it
    /// can while the guest revokes and re-grants. Each round the guest
    /// waits until the peer has tried to map the fresh grant (so it got in
    /// every round: the race is made to happen, whatever the scheduler
    /// does), then revokes while the peer keeps mapping. Whenever a revoke
    /// succeeds the peer must hold no mapping, and a map that starts after
    /// it must fail, until the guest grants again.
    #[test]
    fn revoke_races_a_peer_that_maps_and_unmaps() {
        const ROUNDS: u64 = 5_000;
        let e = Arc::new(GrantEntryV1::default());
        let held = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(AtomicU64::new(0));
        let peer = {
            let (e, held, stop, attempts) =
                (e.clone(), held.clone(), stop.clone(), attempts.clone());
            std::thread::spawn(move || {
                let mut maps = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if peer::map_v1(&*e, DomId(1), true) {
                        held.store(true, Ordering::Relaxed);
                        maps += 1;
                        std::hint::spin_loop();
                        held.store(false, Ordering::Relaxed);
                        peer::unmap_v1(&*e);
                    }
                    attempts.fetch_add(1, Ordering::SeqCst);
                }
                maps
            })
        };
        let (mut revoked, mut refused) = (0u64, 0u64);
        while revoked < ROUNDS {
            publish_v1(&*e, DomId(1), Mfn(revoked), false);
            wait_for_attempt(&attempts, attempts.load(Ordering::SeqCst));
            loop {
                match revoke_v1(&*e) {
                    Ok(()) => {
                        assert!(
                            !held.load(Ordering::Relaxed),
                            "revoked while the peer held a mapping"
                        );
                        break;
                    }
                    Err(flags) => {
                        assert_ne!(flags & IN_USE, 0);
                        refused += 1;
                        std::thread::yield_now();
                    }
                }
            }
            // The page is ours again: the peer cannot map it.
            assert!(is_free_v1(&*e));
            assert!(!peer::map_v1(&*e, DomId(1), false));
            revoked += 1;
        }
        stop.store(true, Ordering::Relaxed);
        let maps = peer.join().unwrap();
        // An attempt on a valid grant for this domain always maps.
        assert!(maps >= ROUNDS, "{maps} peer maps in {ROUNDS} rounds");
        eprintln!("{ROUNDS} revokes, {refused} refused while mapped, {maps} peer maps");
    }

    #[test]
    fn v2_revoke_races_a_peer() {
        const ROUNDS: u64 = 5_000;
        let e = Arc::new(GrantEntryV2::default());
        let status = Arc::new(AtomicU16::new(0));
        let held = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let attempts = Arc::new(AtomicU64::new(0));
        let peer = {
            let (e, status, held, stop, attempts) =
                (e.clone(), status.clone(), held.clone(), stop.clone(), attempts.clone());
            std::thread::spawn(move || {
                let mut maps = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if peer::map_v2(&*e, &*status, DomId(1), true) {
                        held.store(true, Ordering::SeqCst);
                        maps += 1;
                        held.store(false, Ordering::SeqCst);
                        peer::unmap_v2(&*status);
                    }
                    attempts.fetch_add(1, Ordering::SeqCst);
                }
                maps
            })
        };
        for round in 0..ROUNDS {
            publish_v2(&*e, DomId(1), Mfn(round), false);
            // The peer tries the fresh grant before the revoke.
            wait_for_attempt(&attempts, attempts.load(Ordering::SeqCst));
            while revoke_v2(&*e, &*status).is_err() {
                std::thread::yield_now();
            }
            assert!(!held.load(Ordering::SeqCst), "revoked while the peer held a mapping");
            assert!(!peer::map_v2(&*e, &*status, DomId(1), false), "mapped after the revoke");
        }
        stop.store(true, Ordering::Relaxed);
        let maps = peer.join().unwrap();
        assert!(maps >= ROUNDS, "{maps} peer maps in {ROUNDS} rounds");
    }
}

/// The loom model: every interleaving (and every weak-memory outcome loom
/// models) of one revoke against one map/unmap.
#[cfg(all(test, loom))]
mod loom_model {
    use super::*;
    use loom::sync::atomic::{AtomicBool, AtomicU16 as LAtomicU16, AtomicU64 as LAtomicU64};
    use loom::sync::Arc;

    impl Atomic16 for LAtomicU16 {
        fn load(&self, order: Ordering) -> u16 {
            LAtomicU16::load(self, order)
        }
        fn store(&self, val: u16, order: Ordering) {
            LAtomicU16::store(self, val, order)
        }
        fn compare_exchange(&self, c: u16, n: u16, s: Ordering, f: Ordering) -> Result<u16, u16> {
            LAtomicU16::compare_exchange(self, c, n, s, f)
        }
        fn fetch_and(&self, val: u16, order: Ordering) -> u16 {
            LAtomicU16::fetch_and(self, val, order)
        }
    }

    impl AtomicFrame for LAtomicU64 {
        fn store(&self, val: u64, order: Ordering) {
            LAtomicU64::store(self, val, order)
        }
        fn load(&self, order: Ordering) -> u64 {
            LAtomicU64::load(self, order)
        }
    }

    #[derive(Default)]
    struct Entry {
        flags: LAtomicU16,
        domid: LAtomicU16,
        frame: LAtomicU64,
    }

    impl EntryV1 for Entry {
        type Word = LAtomicU16;
        type Frame = LAtomicU64;
        fn flags(&self) -> &LAtomicU16 {
            &self.flags
        }
        fn domid(&self) -> &LAtomicU16 {
            &self.domid
        }
        fn frame(&self) -> &LAtomicU64 {
            &self.frame
        }
    }

    impl EntryV2 for Entry {
        type Word = LAtomicU16;
        type Frame = LAtomicU64;
        fn flags(&self) -> &LAtomicU16 {
            &self.flags
        }
        fn domid(&self) -> &LAtomicU16 {
            &self.domid
        }
        fn frame(&self) -> &LAtomicU64 {
            &self.frame
        }
    }

    /// The guest publishes, then revokes (retrying while refused); the
    /// peer maps once and, if it got in, unmaps. The peer's "page is
    /// mapped" flag must be clear whenever a revoke succeeds, and a
    /// mapping that exists must have seen the published frame.
    #[test]
    fn v1_revoke_never_succeeds_while_mapped() {
        loom::model(|| {
            let e = Arc::new(Entry::default());
            let held = Arc::new(AtomicBool::new(false));
            publish_v1(&*e, DomId(1), Mfn(42), false);
            let peer = {
                let (e, held) = (e.clone(), held.clone());
                loom::thread::spawn(move || {
                    if peer::map_v1(&*e, DomId(1), true) {
                        assert_eq!(e.frame.load(Ordering::Relaxed), 42);
                        held.store(true, Ordering::Relaxed);
                        held.store(false, Ordering::Relaxed);
                        peer::unmap_v1(&*e);
                    }
                })
            };
            loop {
                match revoke_v1(&*e) {
                    Ok(()) => break,
                    Err(_) => loom::thread::yield_now(),
                }
            }
            assert!(!held.load(Ordering::Relaxed), "revoked while mapped");
            // Revoked: a second attempt by the peer fails.
            assert!(!peer::map_v1(&*e, DomId(1), false));
            peer.join().unwrap();
        });
    }

    #[test]
    fn v2_revoke_never_succeeds_while_mapped() {
        loom::model(|| {
            let e = Arc::new(Entry::default());
            let status = Arc::new(LAtomicU16::new(0));
            let held = Arc::new(AtomicBool::new(false));
            publish_v2(&*e, DomId(1), Mfn(42), false);
            let peer = {
                let (e, status, held) = (e.clone(), status.clone(), held.clone());
                loom::thread::spawn(move || {
                    if peer::map_v2(&*e, &*status, DomId(1), true) {
                        held.store(true, Ordering::Relaxed);
                        held.store(false, Ordering::Relaxed);
                        peer::unmap_v2(&*status);
                    }
                })
            };
            while revoke_v2(&*e, &*status).is_err() {
                loom::thread::yield_now();
            }
            assert!(!held.load(Ordering::Relaxed), "revoked while mapped");
            // Revoked: a second attempt by the peer fails.
            assert!(!peer::map_v2(&*e, &*status, DomId(1), false));
            peer.join().unwrap();
        });
    }
}
