//! Ballooning of a PVH guest: GFN = PFN, so frames go back to Xen and
//! come back by their pfns (`XENMEM_decrease_reservation`,
//! `XENMEM_populate_physmap`), with no page tables or M2P to keep true:
//! the identity map keeps mapping the holes (2 MiB pages), nothing refers
//! to them, and the guest's own P2M marks them. No growth past the boot
//! size: there is no P2M for the toolstack to read.

use crate::memory::balloon::Holes;
use crate::memory::pagetable::MmuError;
use crate::pv::mm;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use hypercall::abi::memory::INVALID_P2M_ENTRY;
use hypercall::ops::memory;
use hypercall::{FrameRange, Mfn, Pfn, XenError};

fn set_p2m(pfn: Pfn, gfn: Option<Mfn>) {
    crate::pv::p2m()[pfn.0 as usize]
        .store(gfn.map_or(INVALID_P2M_ENTRY, |m| m.0), Ordering::Relaxed);
}

/// Gives `pages` free frames back to Xen; the pfns, now holes.
pub(crate) fn balloon_out(pages: u64) -> Result<Holes, MmuError> {
    let run = mm::alloc_frames_high(pages).ok_or(MmuError {
        op: "balloon: no free run that long",
        error: XenError::ENOMEM,
        done: 0,
    })?;
    // Out of the allocator for good: on an error the P2M says which pfns
    // Xen took, and none is handed out again as if it were memory.
    let run = run.keep();
    let gfns: Vec<Mfn> = run.clone().frames().map(|p| Mfn(p.0)).collect();
    mm::count();
    // SAFETY: the frames were just taken from the allocator: nothing
    // refers to them (the identity map still maps them, and nothing
    // reaches them through it).
    let n = unsafe { memory::decrease_reservation(&gfns) }.map_err(|error| MmuError {
        op: "decrease_reservation",
        error,
        done: 0,
    })? as usize;
    for pfn in run.clone().frames().take(n) {
        set_p2m(pfn, None);
    }
    if n != gfns.len() {
        return Err(MmuError { op: "decrease_reservation", error: XenError::EBUSY, done: n });
    }
    Ok(Holes::new(run))
}

/// Repopulates the holes (GFN = PFN) and gives the frames to the
/// allocator. On an error the holes come back (the P2M says which were
/// filled).
pub(crate) fn balloon_in(holes: Holes) -> Result<(), (MmuError, Holes)> {
    let pfns = holes.range();
    let want: Vec<Pfn> = pfns.clone().frames().collect();
    let mut out = alloc::vec![Mfn(0); want.len()];
    mm::count();
    // SAFETY: the pfns are holes this balloon made (`Holes` comes only
    // from `balloon_out`): nothing refers to what they held.
    let n = match unsafe { memory::populate_physmap(&want, &mut out) } {
        Ok(n) => n as usize,
        Err(error) => return Err((MmuError { op: "populate_physmap", error, done: 0 }, holes)),
    };
    for &pfn in &want[..n] {
        set_p2m(pfn, Some(Mfn(pfn.0)));
    }
    if n != want.len() {
        let e = MmuError { op: "populate_physmap", error: XenError::ENOMEM, done: n };
        return Err((e, holes));
    }
    match mm::add_frames(holes.into_range()) {
        Ok(()) => Ok(()),
        Err(_) => {
            let err =
                MmuError { op: "balloon: freeing the frames", error: XenError::EINVAL, done: 0 };
            Err((err, Holes::new(pfns.start..pfns.start)))
        }
    }
}
