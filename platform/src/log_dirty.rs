//! Asking Xen to log pages as dirty, for a live migration's last round.
//!
//! During a live migration the toolstack sends every page once (round 1),
//! then, round after round, the pages Xen logged as written meanwhile;
//! the last round, after the guest suspended, sends what is still logged.
//! A page the guest gets from `XENMEM_populate_physmap` during the
//! pre-copy is a trap on Xen 4.17 for an HVM container (PVH): its
//! populate path (`p2m_add_page`) neither logs the page nor maps it
//! read-only for logging, so a page round 1 sent as absent, then
//! populated and written, may never be sent at all (Xen 4.20.3 and later
//! log it: "x86/mm: update log-dirty bitmap when manipulating P2M").
//! The guest cannot tell that log-dirty mode is on, so at every suspend
//! it has Xen log each page it ballooned in since the previous one.
//!
//! The request is a `GNTTABOP_copy` of zero bytes from the page onto
//! itself (both sides by frame number, `DOMID_SELF`): Xen maps the
//! destination, copies nothing and logs it (`gnttab_copy_buf` ends with
//! `gnttab_mark_dirty`, which does nothing when log-dirty mode is off).
//! Nothing of the page changes, so no reference Rust holds to it is
//! disturbed. See docs/migration.md.

use core::ops::Range;
use hypercall::abi::grant_table::{GnttabCopy, GnttabCopyPtr};
use hypercall::abi::memory::INVALID_P2M_ENTRY;
use hypercall::abi::xen::DOMID_SELF;
use hypercall::ops::grant_table as gnttab;
use hypercall::{Pfn, XenError};

/// Copy operations per hypercall (on the stack: 40 bytes each).
const BATCH: usize = 64;

/// What [`mark`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Marked {
    /// Pages Xen took the request for.
    pub pages: u64,
    /// Pages skipped: holes in the P2M (nothing to log).
    pub holes: u64,
    /// Pages whose request Xen refused, and the first refusal's status.
    pub refused: u64,
    pub first_refusal: Option<(Pfn, i16)>,
}

/// Has Xen log every populated page of `pfns` as dirty. `Err` only when
/// Xen rejected a whole batch.
pub fn mark(pfns: Range<Pfn>) -> Result<Marked, XenError> {
    let mut out = Marked::default();
    let mut ops = [GnttabCopy::default(); BATCH];
    let mut names = [Pfn(0); BATCH];
    let mut n = 0;
    let flush = |ops: &mut [GnttabCopy], names: &[Pfn], out: &mut Marked| {
        // SAFETY: every op copies zero bytes: Xen writes nothing into
        // the destination page, only its log-dirty bitmap and the ops'
        // status fields (the array is ours, live and writable).
        unsafe { gnttab::copy(ops) }?;
        for (op, &pfn) in ops.iter().zip(names) {
            if op.status == 0 {
                out.pages += 1;
            } else {
                out.refused += 1;
                out.first_refusal.get_or_insert((pfn, op.status));
            }
        }
        Ok::<(), XenError>(())
    };
    for pfn in pfns.start.0..pfns.end.0 {
        let frame = match crate::pv::pfn_to_mfn(Pfn(pfn)) {
            Some(m) if m.0 != INVALID_P2M_ENTRY => m,
            _ => {
                out.holes += 1;
                continue;
            }
        };
        let side = GnttabCopyPtr { u: frame.0, domid: DOMID_SELF, offset: 0 };
        ops[n] = GnttabCopy { source: side, dest: side, len: 0, flags: 0, status: 0 };
        names[n] = Pfn(pfn);
        n += 1;
        if n == BATCH {
            flush(&mut ops, &names, &mut out)?;
            n = 0;
        }
    }
    if n > 0 {
        flush(&mut ops[..n], &names[..n], &mut out)?;
    }
    Ok(out)
}
