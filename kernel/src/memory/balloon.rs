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
use hypercall::{Mfn, Pfn, XenError};

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
    MmuError {
        op,
        error: XenError::ENOMEM,
        done,
    }
}

/// Gives the pages of `pfns` (mapped in `map`, unused) back to Xen.
pub fn give_back<M: Mmu + Reservation>(
    m: &mut M,
    root: Mfn,
    map: &DirectMap,
    pfns: Range<Pfn>,
    buf: &mut [MmuUpdate],
) -> Result<(), MmuError> {
    let mut pfn = pfns.start.0;
    while pfn < pfns.end.0 {
        let n = ((pfns.end.0 - pfn) as usize).min(CHUNK);
        let mut old = [None; CHUNK];
        unmap_pages(m, root, map.virt(Pfn(pfn)), &mut old[..n], buf)?;
        let mut mfns = [Mfn(0); CHUNK];
        for k in 0..n {
            mfns[k] = match old[k].or_else(|| m.pfn_to_mfn(Pfn(pfn + k as u64))) {
                Some(mfn) => mfn,
                None => return Err(short("balloon: pfn has no frame", k)),
            };
        }
        let took = m.decrease(&mfns[..n])?;
        for k in 0..took {
            m.set_p2m(Pfn(pfn + k as u64), None);
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
    let mut pfn = pfns.start.0;
    while pfn < pfns.end.0 {
        let n = ((pfns.end.0 - pfn) as usize).min(CHUNK);
        let mut want = [Pfn(0); CHUNK];
        for (k, w) in want[..n].iter_mut().enumerate() {
            *w = Pfn(pfn + k as u64);
        }
        let mut got = [Mfn(0); CHUNK];
        let filled = m.populate(&want[..n], &mut got[..n])?;
        for k in 0..filled {
            m.set_p2m(want[k], Some(got[k]));
        }
        map_pages(
            m,
            root,
            map.virt(Pfn(pfn)),
            &got[..filled],
            Some(Pfn(pfn)),
            DATA_FLAGS,
            buf,
        )?;
        if filled < n {
            return Err(short("populate_physmap", filled));
        }
        pfn += n as u64;
    }
    Ok(())
}
