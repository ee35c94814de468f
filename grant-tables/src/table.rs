//! A domain's own grant table: set-up, growth on demand up to Xen's
//! maximum, granting and revoking access, and pages that could not be
//! revoked.
//!
//! The table never touches Xen itself: [`Hypervisor`] does the calls and
//! maps the frames (the kernel with real hypercalls, the tests with a
//! fake), and hands back the entries as slices of atomics.
//!
//! A grant takes a page, never a frame number: the caller names an owned
//! page set of the [`Hypervisor`]'s own kind and an index in it, and only
//! the hypervisor says which frame that is ([`Hypervisor::share`]). With
//! the frame the table gets a [`Hypervisor::Hold`] on the page's memory and
//! keeps it while the entry is granted, quarantined included: a page whose
//! owner is dropped while another domain may still write it stays
//! allocated until the grant is revoked. So safe code can neither grant a
//! frame it does not own (the kernel's page tables, its heap) nor free a
//! page a grant still shares.

use crate::error::GrantError;
use crate::protocol;
use crate::refs::{RefAllocator, RefState, Reservation};
use alloc::vec::Vec;
use hypercall::abi::grant_table::{GrantEntryV1, GrantEntryV2, GrantRef, GrantStatus};
use hypercall::ops::grant_table::GnttabError;
use hypercall::{DomId, Mfn};

/// The entry layout in force (the ABI's enum, with `number` and `per_frame`).
pub use hypercall::abi::grant_table::Version;

/// The table's entries as mapped by the [`Hypervisor`]: shared with Xen,
/// so only ever atomics behind shared references.
#[derive(Clone, Copy, Debug)]
pub enum Entries {
    V1(&'static [GrantEntryV1]),
    /// v2 entries and their status words (Xen's `GTF_reading`/`GTF_writing`).
    V2 {
        entries: &'static [GrantEntryV2],
        status: &'static [GrantStatus],
    },
}

impl Entries {
    fn len(&self) -> u32 {
        match self {
            Entries::V1(e) => e.len() as u32,
            Entries::V2 { entries, status } => entries.len().min(status.len()) as u32,
        }
    }
}

/// What the table needs from Xen.
pub trait Hypervisor {
    /// `GNTTABOP_query_size`: `(frames now, most frames allowed)`.
    fn query_size(&mut self) -> Result<(u32, u32), GnttabError>;
    /// `GNTTABOP_setup_table` for `nr_frames` (grows Xen's table), maps
    /// every frame (and, for v2, the status frames), and returns all
    /// entries of the table in `version`'s layout.
    fn grow(&mut self, nr_frames: u32, version: Version) -> Result<Entries, GrantError>;
    /// `GNTTABOP_set_version`. Going to v1, the implementation unmaps the
    /// status frames first (Xen frees them).
    fn set_version(&mut self, version: Version) -> Result<(), GrantError>;

    /// The pages this domain may grant: owned memory the implementation
    /// hands out and that Rust only ever sees as atomics (so another domain
    /// may write it at any time). Only the implementation can make one.
    type Page: ?Sized;
    /// What a live grant keeps of its page: while the table holds one,
    /// the page's memory is neither freed nor reused, whatever its owner
    /// does.
    type Hold;
    /// The frame Xen knows page `index` of `page` by, and a hold on the
    /// page's memory; `None` if `page` has no page `index`.
    fn share(&mut self, page: &Self::Page, index: usize) -> Option<(Mfn, Self::Hold)>;
}

/// Figures for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub frames: u32,
    pub max_frames: u32,
    /// Entries in the table (toolstack's included).
    pub capacity: u32,
    /// References granted or reserved.
    pub in_use: u32,
    pub free: u32,
    /// Times the table grew after set-up.
    pub grows: u32,
    /// Pages kept out of use because their peer still had them mapped.
    pub quarantined: u32,
    /// Revokes refused because the page was mapped.
    pub refused: u64,
}

/// This domain's grant table.
pub struct GrantTable<H: Hypervisor> {
    hv: H,
    version: Version,
    entries: Entries,
    frames: u32,
    max_frames: u32,
    refs: RefAllocator,
    /// The hold on the page of every granted reference (by reference):
    /// released when its revoke succeeds.
    holds: Vec<Option<H::Hold>>,
    /// Grants whose page is still mapped by the peer: the grant and its
    /// hold stay until a revoke succeeds.
    quarantine: Vec<GrantRef>,
    grows: u32,
    refused: u64,
}

impl<H: Hypervisor> core::fmt::Debug for GrantTable<H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GrantTable")
            .field("version", &self.version)
            .field("stats", &self.stats())
            .finish()
    }
}

fn xen(op: &'static str) -> impl Fn(GnttabError) -> GrantError {
    move |error| GrantError::Hypervisor { op, error }
}

impl<H: Hypervisor> GrantTable<H> {
    /// Sets the table up: asks Xen its size and maximum, switches to
    /// `version` if it is not v1 (Xen's default), and maps the frames Xen
    /// has already (at least one).
    pub fn new(mut hv: H, version: Version) -> Result<Self, GrantError> {
        let (frames, max_frames) = hv.query_size().map_err(xen("query_size"))?;
        if version != Version::V1 {
            hv.set_version(version)?;
        }
        let frames = frames.clamp(1, max_frames.max(1));
        let entries = hv.grow(frames, version)?;
        let mut refs = RefAllocator::new();
        refs.resize(entries.len());
        let mut holds = Vec::new();
        holds.resize_with(entries.len() as usize, || None);
        Ok(Self {
            hv,
            version,
            entries,
            frames,
            max_frames,
            refs,
            holds,
            quarantine: Vec::new(),
            grows: 0,
            refused: 0,
        })
    }

    pub fn version(&self) -> Version {
        self.version
    }

    pub fn hypervisor(&mut self) -> &mut H {
        &mut self.hv
    }

    pub fn stats(&self) -> Stats {
        Stats {
            frames: self.frames,
            max_frames: self.max_frames,
            capacity: self.refs.capacity(),
            in_use: self.refs.in_use(),
            free: self.refs.free_count(),
            grows: self.grows,
            quarantined: self.quarantine.len() as u32,
            refused: self.refused,
        }
    }

    /// The most references the table can ever hold (at Xen's maximum).
    pub fn max_capacity(&self) -> u32 {
        self.max_frames * self.version.per_frame()
    }

    /// Grows the table until `n` references are free, or says it is full.
    #[inline(always)]
    fn ensure_free(&mut self, n: u32) -> Result<(), GrantError> {
        if self.refs.free_count() >= n {
            return Ok(());
        }
        self.grow_for(n)
    }

    /// [`ensure_free`](Self::ensure_free)'s slow path: more table frames.
    #[inline(never)]
    fn grow_for(&mut self, n: u32) -> Result<(), GrantError> {
        while self.refs.free_count() < n {
            if self.frames >= self.max_frames {
                return Err(GrantError::TableFull {
                    wanted: n,
                    free: self.refs.free_count(),
                    capacity: self.refs.capacity(),
                });
            }
            let missing = n - self.refs.free_count();
            let more = missing.div_ceil(self.version.per_frame()).max(1);
            let frames = (self.frames + more).min(self.max_frames);
            self.entries = self.hv.grow(frames, self.version)?;
            self.frames = frames;
            self.grows += 1;
            self.refs.resize(self.entries.len());
            self.holds.resize_with(self.entries.len() as usize, || None);
        }
        Ok(())
    }

    /// `n` references at once (all or none), growing the table if needed.
    pub fn reserve(&mut self, n: u32) -> Result<Reservation, GrantError> {
        self.ensure_free(n)?;
        Ok(self.refs.take(n).expect("ensure_free made room"))
    }

    /// Gives back the references a reservation did not use.
    pub fn release(&mut self, mut res: Reservation) {
        for r in res.drain() {
            self.refs.put(r);
        }
    }

    /// Lets `domid` map or copy page `index` of `page` (read-only if
    /// asked); returns the reference to pass to it. The table holds the
    /// page's memory until the grant is revoked.
    pub fn grant_access(
        &mut self,
        domid: DomId,
        page: &H::Page,
        index: usize,
        readonly: bool,
    ) -> Result<GrantRef, GrantError> {
        let (frame, hold) = self.share(page, index)?;
        self.ensure_free(1)?;
        let r = self.refs.take_one().expect("ensure_free made room");
        self.publish(r, domid, frame, hold, readonly);
        Ok(r)
    }

    /// The frame of page `index` of `page`, checked against the entry
    /// layout, and the hold on it.
    #[inline(always)]
    fn share(&mut self, page: &H::Page, index: usize) -> Result<(Mfn, H::Hold), GrantError> {
        let (frame, hold) = self.hv.share(page, index).ok_or(GrantError::NoSuchPage { index })?;
        if self.version == Version::V1 && frame.0 > u64::from(u32::MAX) {
            return Err(GrantError::FrameTooLarge(frame));
        }
        Ok((frame, hold))
    }

    /// As [`grant_access`](Self::grant_access), with a reference from `res`.
    pub fn grant_reserved(
        &mut self,
        res: &mut Reservation,
        domid: DomId,
        page: &H::Page,
        index: usize,
        readonly: bool,
    ) -> Result<GrantRef, GrantError> {
        let (frame, hold) = self.share(page, index)?;
        let r = res.claim().ok_or(GrantError::ReservationEmpty)?;
        self.publish(r, domid, frame, hold, readonly);
        Ok(r)
    }

    /// Writes the entry of reserved `r` in Xen's order, keeps the page's
    /// hold, and marks it granted.
    #[inline(always)]
    fn publish(&mut self, r: GrantRef, domid: DomId, frame: Mfn, hold: H::Hold, readonly: bool) {
        let i = r.0 as usize;
        self.holds[i] = Some(hold);
        match self.entries {
            Entries::V1(e) => protocol::publish_v1(&e[i], domid, frame, readonly),
            Entries::V2 { entries, .. } => {
                protocol::publish_v2(&entries[i], domid, frame, readonly)
            }
        }
        self.refs.mark_granted(r);
    }

    /// Revokes `r`. Refused ([`GrantError::InUse`]) while the peer has the
    /// page mapped: the grant stays and the page must not be reused. On
    /// success the reference is free again.
    pub fn end_access(&mut self, r: GrantRef) -> Result<(), GrantError> {
        if self.refs.state(r) != Some(RefState::Granted) {
            return Err(GrantError::NotGranted(r));
        }
        let i = r.0 as usize;
        let revoked = match self.entries {
            Entries::V1(e) => protocol::revoke_v1(&e[i]),
            Entries::V2 { entries, status } => protocol::revoke_v2(&entries[i], &status[i]),
        };
        match revoked {
            Ok(()) => {
                // Nothing else can reach the page through `r` now.
                self.holds[i] = None;
                self.refs.put(r);
                Ok(())
            }
            Err(flags) => {
                self.refused += 1;
                Err(GrantError::InUse { gref: r, flags })
            }
        }
    }

    /// Revokes `r`; if the peer still maps its page, keeps the grant and
    /// its hold in quarantine (counted in [`Stats::quarantined`]) to be
    /// revoked by a later [`reclaim`](Self::reclaim), so the caller may drop
    /// the page either way: its memory is not freed while another domain
    /// can write it. Returns whether the grant ended now.
    pub fn end_access_or_keep(&mut self, r: GrantRef) -> bool {
        match self.end_access(r) {
            Ok(()) => true,
            Err(GrantError::InUse { .. }) => {
                self.quarantine.push(r);
                false
            }
            // Not a grant of ours: nothing shares a page through `r`.
            Err(_) => true,
        }
    }

    /// Retries the quarantined grants; returns the references revoked now
    /// (their pages' holds released).
    pub fn reclaim(&mut self) -> Vec<GrantRef> {
        let mut revoked = Vec::new();
        let mut kept = core::mem::take(&mut self.quarantine);
        kept.retain(|&r| match self.end_access(r) {
            Ok(()) => {
                revoked.push(r);
                false
            }
            Err(_) => true,
        });
        self.quarantine = kept;
        revoked
    }

    /// Switches the entry layout. Only while no grant is active or
    /// reserved (Xen refuses otherwise, and our references would change
    /// meaning).
    pub fn set_version(&mut self, version: Version) -> Result<(), GrantError> {
        if version == self.version {
            return Ok(());
        }
        let active = self.refs.in_use() + self.quarantine.len() as u32;
        if active > 0 {
            return Err(GrantError::GrantsActive { active });
        }
        // The hypervisor may unmap frames (v2 status): drop our view first.
        self.entries = Entries::V1(&[]);
        if let Err(e) = self.hv.set_version(version) {
            self.entries = self.hv.grow(self.frames, self.version)?;
            return Err(e);
        }
        self.version = version;
        self.entries = self.hv.grow(self.frames, version)?;
        self.refs = RefAllocator::new();
        self.refs.resize(self.entries.len());
        self.holds.clear();
        self.holds.resize_with(self.entries.len() as usize, || None);
        Ok(())
    }

    /// The raw flags of entry `r` (v1) or its status (v2), for tests.
    pub fn entry_flags(&self, r: GrantRef) -> Option<u16> {
        use core::sync::atomic::Ordering::Relaxed;
        let i = r.0 as usize;
        match self.entries {
            Entries::V1(e) => e.get(i).map(|e| e.flags.load(Relaxed)),
            Entries::V2 { entries, status } => {
                Some(entries.get(i)?.hdr.flags.load(Relaxed) | status.get(i)?.load(Relaxed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{page, FakePages, FakeXen};
    use crate::protocol::peer;
    use hypercall::abi::grant_table::{gtf, NR_RESERVED_ENTRIES};
    use std::rc::Rc;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::sync::Arc;

    const PEER: DomId = DomId(1);

    fn table(frames: u32, max: u32) -> GrantTable<FakeXen> {
        GrantTable::new(FakeXen::new(frames, max), Version::V1).unwrap()
    }

    #[test]
    fn setup_maps_the_frames_xen_has() {
        let t = table(1, 4);
        let s = t.stats();
        assert_eq!((s.frames, s.max_frames, s.capacity), (1, 4, 512));
        assert_eq!(s.free, 512 - NR_RESERVED_ENTRIES);
        assert_eq!(t.max_capacity(), 2048);
        // Xen reporting 0 frames: the table still starts with one.
        let t = table(0, 4);
        assert_eq!(t.stats().frames, 1);
    }

    #[test]
    fn grant_writes_the_entry_and_end_access_clears_it() {
        let mut t = table(1, 1);
        let r = t.grant_access(PEER, &page(0xabc), 0, true).unwrap();
        assert_eq!(r, GrantRef(NR_RESERVED_ENTRIES));
        let e = &t.hypervisor().v1()[r.0 as usize];
        assert_eq!(e.frame.load(Ordering::Relaxed), 0xabc);
        assert_eq!(e.domid.load(Ordering::Relaxed), 1);
        assert_eq!(e.flags.load(Ordering::Relaxed), gtf::PERMIT_ACCESS | gtf::READONLY);
        t.end_access(r).unwrap();
        assert_eq!(e.flags.load(Ordering::Relaxed), 0);
        assert_eq!(t.end_access(r), Err(GrantError::NotGranted(r)), "twice");
        assert_eq!(t.end_access(GrantRef(0)), Err(GrantError::NotGranted(GrantRef(0))));
        assert_eq!(t.end_access(GrantRef(1 << 20)), Err(GrantError::NotGranted(GrantRef(1 << 20))));
        assert_eq!(
            t.grant_access(PEER, &page(1 << 32), 0, false),
            Err(GrantError::FrameTooLarge(Mfn(1 << 32)))
        );
    }

    #[test]
    fn fills_to_the_maximum_then_fails_clearly_and_recovers() {
        let mut t = table(1, 3);
        let mut refs = Vec::new();
        let max = t.max_capacity() - NR_RESERVED_ENTRIES;
        for i in 0..max {
            refs.push(t.grant_access(PEER, &page(u64::from(i)), 0, false).unwrap());
        }
        assert_eq!(t.stats().frames, 3);
        assert_eq!(t.stats().grows, 2, "one frame at a time, on demand");
        let full = t.grant_access(PEER, &page(7), 0, false);
        assert_eq!(full, Err(GrantError::TableFull { wanted: 1, free: 0, capacity: 1536 }));
        assert!(t.reserve(1).is_err());
        // Every reference distinct, none of the toolstack's.
        let mut sorted = refs.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), refs.len());
        assert!(sorted[0].0 >= NR_RESERVED_ENTRIES);
        // Free one: it is reused.
        t.end_access(refs[100]).unwrap();
        assert_eq!(t.grant_access(PEER, &page(9), 0, false), Ok(refs[100]));
        for r in refs {
            let _ = t.end_access(r);
        }
        assert_eq!(t.stats().in_use, 0);
    }

    #[test]
    fn reservations_are_all_or_nothing_and_grow_the_table() {
        let mut t = table(1, 2);
        // A ring's worth beyond the first frame: grows once.
        let mut ring = t.reserve(600).unwrap();
        assert_eq!((ring.len(), t.stats().frames), (600, 2));
        let before = t.stats();
        assert!(matches!(t.reserve(500), Err(GrantError::TableFull { wanted: 500, .. })));
        assert_eq!(t.stats(), before, "a refused reservation takes nothing");
        let first = t.grant_reserved(&mut ring, PEER, &page(5), 0, false).unwrap();
        assert_eq!(first, GrantRef(NR_RESERVED_ENTRIES));
        assert_eq!(ring.len(), 599);
        t.release(ring);
        assert_eq!(t.stats().in_use, 1);
        let mut empty = t.reserve(0).unwrap();
        assert_eq!(
            t.grant_reserved(&mut empty, PEER, &page(5), 0, false),
            Err(GrantError::ReservationEmpty)
        );
    }

    #[test]
    fn a_mapped_page_is_kept_until_its_peer_lets_go() {
        let mut t = table(1, 1);
        let p = page(0x42);
        let r = t.grant_access(PEER, &p, 0, false).unwrap();
        assert_eq!(p.holds(), 1, "the grant holds its page");
        let e = &t.hypervisor().v1()[r.0 as usize];
        assert!(peer::map_v1(e, PEER, true));
        let flags = gtf::PERMIT_ACCESS | gtf::READING | gtf::WRITING;
        assert_eq!(t.end_access(r), Err(GrantError::InUse { gref: r, flags }));
        assert_eq!(p.holds(), 1, "a refused revoke keeps the hold");
        assert!(!t.end_access_or_keep(r));
        assert_eq!(t.stats().quarantined, 1);
        assert_eq!(t.stats().refused, 2);
        // The owner lets go of its page: the quarantined grant still holds it.
        let held = p.held.clone();
        drop(p);
        assert_eq!(Rc::strong_count(&held), 2);
        assert!(t.reclaim().is_empty(), "still mapped");
        // The reference is not handed out again meanwhile.
        let other = t.grant_access(PEER, &page(1), 0, false).unwrap();
        assert_ne!(other, r);
        peer::unmap_v1(e);
        assert_eq!(t.reclaim(), vec![r]);
        assert_eq!(Rc::strong_count(&held), 1, "the page is released with its grant");
        assert_eq!(t.stats().quarantined, 0);
        assert!(!peer::map_v1(e, PEER, false), "revoked");
    }

    #[test]
    fn grants_take_pages_not_frame_numbers() {
        let mut t = table(1, 1);
        let set = FakePages::new(&[10, 11, 12]);
        let refs: Vec<GrantRef> =
            (0..3).map(|i| t.grant_access(PEER, &set, i, false).unwrap()).collect();
        let frames: Vec<u32> = refs
            .iter()
            .map(|r| t.hypervisor().v1()[r.0 as usize].frame.load(Ordering::Relaxed))
            .collect();
        assert_eq!(frames, [10, 11, 12]);
        assert_eq!(set.holds(), 3);
        let before = t.stats();
        assert_eq!(t.grant_access(PEER, &set, 3, false), Err(GrantError::NoSuchPage { index: 3 }));
        let mut res = t.reserve(1).unwrap();
        assert_eq!(
            t.grant_reserved(&mut res, PEER, &set, 7, true),
            Err(GrantError::NoSuchPage { index: 7 })
        );
        assert_eq!(res.len(), 1, "a refused grant claims no reference");
        t.release(res);
        assert_eq!(t.stats(), before, "nothing taken");
        for r in refs {
            t.end_access(r).unwrap();
        }
        assert_eq!(set.holds(), 0, "every revoke releases its hold");
    }

    #[test]
    fn v2_grants_use_the_status_words() {
        let mut t = table(1, 2);
        let r = t.grant_access(PEER, &page(3), 0, false).unwrap();
        assert_eq!(t.set_version(Version::V2), Err(GrantError::GrantsActive { active: 1 }));
        t.end_access(r).unwrap();
        t.set_version(Version::V2).unwrap();
        assert_eq!(t.stats().capacity, 256);
        assert_eq!(t.max_capacity(), 512);
        // 64-bit frames are fine in v2.
        let r = t.grant_access(PEER, &page(1 << 40), 0, false).unwrap();
        let (entries, status) = t.hypervisor().v2();
        let i = r.0 as usize;
        assert_eq!(entries[i].frame.load(Ordering::Relaxed), 1 << 40);
        assert!(peer::map_v2(&entries[i], &status[i], PEER, true));
        assert!(matches!(t.end_access(r), Err(GrantError::InUse { .. })));
        peer::unmap_v2(&status[i]);
        t.end_access(r).unwrap();
        // Fill v2 to its maximum and back.
        let n = t.max_capacity() - NR_RESERVED_ENTRIES;
        let res = t.reserve(n).unwrap();
        assert!(t.reserve(1).is_err());
        t.release(res);
        t.set_version(Version::V1).unwrap();
        assert_eq!(t.stats().capacity, 1024);
    }

    /// Table-level race: a peer thread maps and unmaps granted pages at
    /// random while the guest revokes them all with end_access_or_keep and
    /// reclaims. A page comes back only when the peer holds no mapping.
    #[test]
    fn pages_come_back_only_when_unmapped_under_a_racing_peer() {
        const N: u32 = 64;
        let mut t = table(1, 1);
        let entries = t.hypervisor().v1();
        let mapped: Arc<Vec<AtomicU32>> = Arc::new((0..512).map(|_| AtomicU32::new(0)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let pages = FakePages::new(&(0..u64::from(N)).collect::<Vec<_>>());
        for round in 0..50 {
            let refs: Vec<GrantRef> =
                (0..N as usize).map(|i| t.grant_access(PEER, &pages, i, false).unwrap()).collect();
            stop.store(false, Ordering::SeqCst);
            let peer = {
                let (holds, stop, refs) = (mapped.clone(), stop.clone(), refs.clone());
                std::thread::spawn(move || {
                    let mut seed = 0x9E37_79B9u32 ^ round;
                    while !stop.load(Ordering::Relaxed) {
                        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                        let r = refs[(seed >> 8) as usize % refs.len()].0 as usize;
                        if peer::map_v1(&entries[r], PEER, true) {
                            holds[r].store(1, Ordering::Relaxed);
                            std::hint::spin_loop();
                            holds[r].store(0, Ordering::Relaxed);
                            peer::unmap_v1(&entries[r]);
                        }
                    }
                })
            };
            let mut back = Vec::new();
            for &r in &refs {
                if t.end_access_or_keep(r) {
                    assert_eq!(mapped[r.0 as usize].load(Ordering::Relaxed), 0);
                    back.push(r);
                }
            }
            assert_eq!(pages.holds(), N as usize - back.len(), "one hold per grant not ended");
            while back.len() < N as usize {
                for r in t.reclaim() {
                    assert_eq!(mapped[r.0 as usize].load(Ordering::Relaxed), 0);
                    back.push(r);
                }
                std::thread::yield_now();
            }
            stop.store(true, Ordering::SeqCst);
            peer.join().unwrap();
            assert_eq!(t.stats().in_use, 0);
            assert_eq!(pages.holds(), 0);
        }
    }
}
