//! `memory_op` sub-operations.
//!
//! Soundness: the reservation queries pass a `domid_t` by reference and
//! are safe. `decrease_reservation` and `populate_physmap` take or replace
//! the frames behind this guest's pfns, so they are `unsafe`; Xen reads
//! their extent lists (and `populate_physmap` writes them) only during
//! the call, through handles to slices the wrappers borrow.

use super::ptr;
use crate::abi::memory::{cmd, XenMemoryReservation};
use crate::error::{XenError, XenResult};
use crate::raw::{hypercall, nr};
use crate::types::{DomId, Mfn, Pfn};

/// Pages currently allocated to `dom`.
pub fn current_reservation(dom: DomId) -> XenResult<u64> {
    let d = dom.0;
    // SAFETY: the argument is a readable `domid_t`.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::MEMORY_OP }>(cmd::CURRENT_RESERVATION.into(), ptr(&d), 0, 0, 0)
    })
}

/// The most pages `dom` may have.
pub fn maximum_reservation(dom: DomId) -> XenResult<u64> {
    let d = dom.0;
    // SAFETY: the argument is a readable `domid_t`.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::MEMORY_OP }>(cmd::MAXIMUM_RESERVATION.into(), ptr(&d), 0, 0, 0)
    })
}

/// `XENMEM_decrease_reservation`: gives the machine frames `mfns` (single
/// pages) back to Xen. Returns how many Xen took; it stops at the first it
/// cannot free.
///
/// # Safety
/// The frames must be ours and unused: no mapping of ours may refer to
/// them (Xen would keep a frame that is still mapped), and nothing may
/// touch their pfns until they are populated again.
pub unsafe fn decrease_reservation(mfns: &[Mfn]) -> XenResult<u64> {
    let arg = XenMemoryReservation {
        extent_start: mfns.as_ptr() as u64,
        nr_extents: mfns.len() as u64,
        extent_order: 0,
        mem_flags: 0,
        domid: DomId::SELF.0,
    };
    // SAFETY: `arg` is a readable reservation whose handle points at a live
    // array of `xen_pfn_t` (Mfn is a transparent u64) of the length given.
    // The caller guarantees the frames are unused.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::MEMORY_OP }>(cmd::DECREASE_RESERVATION.into(), ptr(&arg), 0, 0, 0)
    })
}

/// `XENMEM_populate_physmap`: asks Xen for a fresh machine frame behind
/// each of `pfns` (single pages). Xen writes the frames it allocated into
/// `mfns_out` (it updates its M2P too) and returns how many it populated:
/// fewer than asked when the domain is at its maximum reservation.
///
/// # Safety
/// The pfns must be holes of this guest (ballooned out), or Xen replaces
/// frames that Rust may be using.
pub unsafe fn populate_physmap(pfns: &[Pfn], mfns_out: &mut [Mfn]) -> XenResult<u64> {
    let n = pfns.len().min(mfns_out.len());
    // Xen reads the pfns from the array and overwrites each with its mfn.
    for (slot, pfn) in mfns_out.iter_mut().zip(pfns) {
        *slot = Mfn(pfn.0);
    }
    let arg = XenMemoryReservation {
        extent_start: mfns_out.as_mut_ptr() as u64,
        nr_extents: n as u64,
        extent_order: 0,
        mem_flags: 0,
        domid: DomId::SELF.0,
    };
    // SAFETY: `arg` is a readable reservation whose handle points at a live,
    // writable array of `n` `xen_pfn_t`; the caller guarantees the pfns are
    // holes.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::MEMORY_OP }>(cmd::POPULATE_PHYSMAP.into(), ptr(&arg), 0, 0, 0)
    })
}
