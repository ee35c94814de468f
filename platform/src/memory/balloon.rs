//! Ballooning: giving pages back to Xen and taking them back, keeping the
//! P2M, the machine-to-phys table and the direct map true.
//!
//! Out: unmap the pages (a page Xen takes must not stay mapped), flush the
//! TLB, hand the machine frames to `XENMEM_decrease_reservation`, and mark
//! the pfns as holes in the P2M. In: `XENMEM_populate_physmap` puts fresh
//! frames behind the same pfns; record them in the P2M, tell Xen's M2P
//! (`MMU_MACHPHYS_UPDATE`) and map them again, in one `mmu_update` batch.

use super::layout::DirectMap;
use super::pagetable::{map_pages, unmap_pages, Mmu, MmuError, DATA_FLAGS};
use core::ops::Range;
use hypercall::abi::mmu::MmuUpdate;
use hypercall::{FrameRange, Mfn, Pfn, XenError};

/// Pfns this guest gave back to Xen: holes in its memory, owned (neither
/// `Copy` nor `Clone`) by whoever holds them until they are taken back.
/// Only the platform's balloon makes them (`platform::pv::mm::balloon_out`),
/// and taking them back consumes them, so a pfn cannot be populated twice
/// or populated by code that never gave it back.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "holes not taken back stay out of the guest's memory"]
pub struct Holes {
    range: Range<Pfn>,
}

#[cfg_attr(
    all(not(target_os = "none"), not(test)),
    expect(dead_code, reason = "only the PV back end makes and consumes holes")
)]
impl Holes {
    pub(crate) fn new(range: Range<Pfn>) -> Self {
        Holes { range }
    }

    /// The pfns (a view).
    pub fn range(&self) -> Range<Pfn> {
        self.range.clone()
    }

    /// How many pages.
    pub fn count(&self) -> u64 {
        self.range.frame_count()
    }

    /// Splits off the top `n` holes (all of them if there are fewer).
    pub fn split_top(&mut self, n: u64) -> Holes {
        let n = n.min(self.count());
        let top = Holes { range: (self.range.end - n)..self.range.end };
        self.range.end = top.range.start;
        top
    }

    pub(crate) fn into_range(self) -> Range<Pfn> {
        self.range
    }
}

/// Pages handled per round (bounded so the buffers can live on the stack).
pub const CHUNK: usize = 256;

/// The reservation half of Xen's memory interface (`memory_op`) and the
/// guest's P2M list.
pub trait Reservation {
    /// `XENMEM_decrease_reservation`: how many frames Xen took.
    fn decrease(&mut self, mfns: &[Mfn]) -> Result<usize, MmuError>;
    /// `XENMEM_populate_physmap`: how many pfns got a frame (in `out`).
    fn populate(&mut self, pfns: &[Pfn], out: &mut [Mfn]) -> Result<usize, MmuError>;
    /// Records `pfn → mfn` (or a hole) in the guest's P2M list.
    fn set_p2m(&mut self, pfn: Pfn, mfn: Option<Mfn>);
}

fn short(op: &'static str, done: usize) -> MmuError {
    MmuError { op, error: XenError::ENOMEM, done }
}

/// Gives the pages of `pfns` (mapped in `map`, unused) back to Xen.
pub fn give_back<M: Mmu + Reservation>(
    m: &mut M,
    root: Mfn,
    map: &DirectMap,
    pfns: Range<Pfn>,
    buf: &mut [MmuUpdate],
) -> Result<(), MmuError> {
    let mut pfn = pfns.start;
    while pfn < pfns.end {
        let n = ((pfns.end - pfn) as usize).min(CHUNK);
        let mut old = [None; CHUNK];
        unmap_pages(m, root, map.virt(pfn), &mut old[..n], buf)?;
        let mut mfns = [Mfn(0); CHUNK];
        for k in 0..n {
            mfns[k] = match old[k].or_else(|| m.pfn_to_mfn(pfn + k as u64)) {
                Some(mfn) => mfn,
                None => return Err(short("balloon: pfn has no frame", k)),
            };
        }
        let took = m.decrease(&mfns[..n])?;
        for k in 0..took {
            m.set_p2m(pfn + k as u64, None);
        }
        if took < n {
            return Err(short("decrease_reservation", took));
        }
        pfn += n as u64;
    }
    Ok(())
}

/// Fills the holes `pfns` with fresh frames from Xen and maps them again.
pub fn take_back<M: Mmu + Reservation>(
    m: &mut M,
    root: Mfn,
    map: &DirectMap,
    pfns: Range<Pfn>,
    buf: &mut [MmuUpdate],
) -> Result<(), MmuError> {
    let mut pfn = pfns.start;
    while pfn < pfns.end {
        let n = ((pfns.end - pfn) as usize).min(CHUNK);
        let mut want = [Pfn(0); CHUNK];
        for (w, p) in want[..n].iter_mut().zip(pfn.run(n as u64).frames()) {
            *w = p;
        }
        let mut got = [Mfn(0); CHUNK];
        let filled = m.populate(&want[..n], &mut got[..n])?;
        for k in 0..filled {
            m.set_p2m(want[k], Some(got[k]));
        }
        map_pages(m, root, map.virt(pfn), &got[..filled], Some(pfn), DATA_FLAGS, buf)?;
        if filled < n {
            return Err(short("populate_physmap", filled));
        }
        pfn += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fake::FakeXen;

    #[test]
    fn holes_split_from_the_top() {
        let mut h = Holes::new(Pfn(10)..Pfn(20));
        let top = h.split_top(4);
        assert_eq!((top.range(), h.range()), (Pfn(16)..Pfn(20), Pfn(10)..Pfn(16)));
        assert_eq!(h.split_top(100).into_range(), Pfn(10)..Pfn(16));
        assert_eq!(h.count(), 0);
    }
    use super::super::pagetable::lookup;
    use super::*;

    #[test]
    fn four_mib_out_and_back_keeps_p2m_m2p_and_mappings_true() {
        let (mut x, _) = FakeXen::boot(4096, 4096, 0x73);
        let (root, map) = (x.root, x.map());
        let mut buf = vec![MmuUpdate::default(); 300];
        let holes = Pfn(3072)..Pfn(4096);
        let before = x.reservation();
        give_back(&mut x, root, &map, holes.clone(), &mut buf).unwrap();
        assert_eq!(x.reservation(), before - 1024);
        for p in 3072..4096 {
            assert_eq!(x.p2m[p as usize], None);
            assert!(lookup(&x, root, map.virt(Pfn(p))).is_none());
        }
        x.audit();
        take_back(&mut x, root, &map, holes, &mut buf).unwrap();
        assert_eq!(x.reservation(), before);
        for p in 3072..4096 {
            let mfn = x.p2m[p as usize].unwrap();
            assert_eq!(x.m2p(mfn), Some(Pfn(p)));
            assert_eq!(lookup(&x, root, map.virt(Pfn(p))).map(|e| e.mfn()), Some(mfn));
        }
        x.audit();
    }

    #[test]
    fn populate_beyond_the_maximum_is_reported() {
        let (mut x, _) = FakeXen::boot(2048, 2048, 0x73);
        let (root, map) = (x.root, x.map());
        let mut buf = vec![MmuUpdate::default(); 64];
        give_back(&mut x, root, &map, Pfn(1900)..Pfn(2048), &mut buf).unwrap();
        x.max_pages -= 10;
        let e = take_back(&mut x, root, &map, Pfn(1900)..Pfn(2048), &mut buf).unwrap_err();
        assert_eq!(e.op, "populate_physmap");
        assert_eq!(e.done, 138);
    }

    #[test]
    fn a_page_table_frame_cannot_be_given_back() {
        let (mut x, pt_end) = FakeXen::boot(2048, 2048, 0x73);
        let (root, map) = (x.root, x.map());
        let mut buf = vec![MmuUpdate::default(); 64];
        // The bootstrap tables are mapped read-only; unmapping the mapping
        // is allowed, but Xen will not free a frame in use as a table.
        let e = give_back(&mut x, root, &map, Pfn(pt_end - 1)..Pfn(pt_end), &mut buf);
        assert_eq!(e.unwrap_err().op, "decrease_reservation");
    }
}
