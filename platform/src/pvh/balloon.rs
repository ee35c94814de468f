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
use hypercall::abi::memory::{XenMemoryReservation, INVALID_P2M_ENTRY};
use hypercall::ops::{memory, multicall};
use hypercall::{DomId, FrameRange, Mfn, Pfn, XenError};

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

/// Multicall entries per hypercall for [`give_back_again`].
const AGAIN_BATCH: usize = 128;

/// In a new domain (after a restore or a migration): gives back again
/// each of `pfns` that this guest's P2M holds as a hole (others are
/// skipped) but that the new domain has a frame behind. A live
/// migration's round 1 sends every populated page; a page the guest
/// gave back after that is not sent again (Xen does not log a removal),
/// and the restoring toolstack never unpopulates what it populated, so
/// the new domain holds a stale frame the guest counts as a hole: it
/// would sit on the domain's reservation (`xl list` showing more than the
/// target) and make the balloon's next populate of that pfn fail at the
/// maximum reservation. Each pfn is one `XENMEM_decrease_reservation`
/// entry of a multicall, so a hole the new domain lacks (Xen takes 0
/// extents) costs nothing more. Returns how many Xen took.
pub fn give_back_again(pfns: core::ops::Range<Pfn>) -> Result<u64, XenError> {
    let holes: Vec<u64> = pfns
        .frames()
        .filter(|p| crate::pv::pfn_to_mfn(*p).is_some_and(|m| m.0 == INVALID_P2M_ENTRY))
        .map(|p| p.0)
        .collect();
    let mut taken = 0;
    for gfns in holes.chunks(AGAIN_BATCH) {
        let args: Vec<XenMemoryReservation> = gfns
            .iter()
            .map(|g| XenMemoryReservation {
                extent_start: g as *const u64 as u64,
                nr_extents: 1,
                extent_order: 0,
                mem_flags: 0,
                domid: DomId::SELF.0,
            })
            .collect();
        let mut entries: Vec<_> = args.iter().map(multicall::decrease_reservation).collect();
        mm::count();
        // SAFETY: each entry names one pfn our P2M holds as a hole: nothing
        // of ours refers to what is behind it (the identity map still maps
        // it, and nothing reaches it through it). `args` and `gfns` outlive
        // the call.
        unsafe { multicall::multicall(&mut entries) }?;
        for e in &entries {
            match XenError::from_ret(e.result as i64) {
                Ok(n) => taken += n,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(taken)
}
