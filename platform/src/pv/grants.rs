//! The unsafe half of grant tables: mapping the table frames Xen returns
//! (machine frames outside our P2M) into the [`vmap`](super::vmap) region
//! and seeing them as slices of atomic entries; mapping pages other
//! domains (or we) grant; running `GNTTABOP_copy` into pages that Rust
//! only sees as atomics. The logic lives in the `grant-tables` crate.

extern crate alloc;

use super::vmap;
use crate::memory::layout::VirtAddr;
use crate::shared_pages::{Grantable, Hold, SharedPage};
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64};
use grant_tables::{CopyBatch, CopyError, Entries, GrantError, Hypervisor, Version};
use hypercall::abi::grant_table::{
    gntcopy, gntmap, GrantEntryV1, GrantEntryV2, GrantHandle, GrantRef, GrantStatus,
    STATUS_PER_FRAME, V1_PER_FRAME, V2_PER_FRAME,
};
use hypercall::ops::grant_table::{self as gnttab, GnttabError};
use hypercall::{DomId, Mfn, XenError, PAGE_SIZE};
use spin::Mutex;

fn mapping(what: &'static str) -> impl Fn(XenError) -> GrantError {
    move |error| GrantError::Mapping { what, error }
}

/// Frames mapped at consecutive pages of a reserved range.
struct MappedFrames {
    va: VirtAddr,
    capacity: u32,
    mfns: Vec<Mfn>,
}

impl MappedFrames {
    fn new(pages: u32) -> Result<Self, GrantError> {
        if crate::pvh::active() {
            // PVH puts table frames into physical space instead (grow_pvh).
            return Ok(Self { va: VirtAddr(0), capacity: 0, mfns: Vec::new() });
        }
        let va = vmap::reserve(u64::from(pages)).map_err(mapping("reserving grant frame space"))?;
        Ok(Self { va, capacity: pages, mfns: Vec::new() })
    }

    /// Maps the frames of `want` that are not mapped yet. Xen never moves
    /// a frame of a PV guest's table; if it did, refuse rather than swap
    /// memory under live references.
    fn extend(&mut self, want: &[Mfn]) -> Result<(), GrantError> {
        if want.len() as u32 > self.capacity {
            return Err(GrantError::Mapping {
                what: "more frames than reserved",
                error: XenError::E2BIG,
            });
        }
        if want[..self.mfns.len().min(want.len())] != self.mfns[..self.mfns.len().min(want.len())] {
            return Err(GrantError::Mapping {
                what: "Xen moved a grant frame",
                error: XenError::EINVAL,
            });
        }
        let have = self.mfns.len();
        if want.len() > have {
            let va = self.va.add((have * PAGE_SIZE) as u64);
            // SAFETY: the pages are unused pages of our vmap range (never
            // mapped before, or unmapped by `clear`); the frames are Xen's
            // grant frames, shared with us and not in our P2M, so they alias
            // no memory Rust owns.
            unsafe { vmap::map(va, &want[have..], true) }
                .map_err(mapping("mapping grant frames"))?;
            self.mfns.extend_from_slice(&want[have..]);
        }
        Ok(())
    }

    /// Unmaps everything.
    ///
    /// # Safety
    /// No slice made by [`slice`](Self::slice) may be alive.
    unsafe fn clear(&mut self) -> Result<(), GrantError> {
        // SAFETY: passed on from the caller.
        unsafe { vmap::unmap(self.va, self.mfns.len() as u64) }
            .map_err(mapping("unmapping grant frames"))?;
        self.mfns.clear();
        Ok(())
    }

    /// The mapped frames as `n` values of `T`.
    fn slice<T>(&self, n: usize) -> &'static [T] {
        assert!(n * core::mem::size_of::<T>() <= self.mfns.len() * PAGE_SIZE);
        // SAFETY: the pages are mapped (checked above) for as long as the
        // table lives: entry frames are never unmapped, and status frames
        // only by `set_version` after the table dropped its slices. `T` is
        // an all-atomics grant struct, valid for any bits, page-aligned
        // here; Xen writes it concurrently, and it is only seen through
        // shared references.
        unsafe { core::slice::from_raw_parts(self.va.0 as *const T, n) }
    }
}

/// The kernel's [`Hypervisor`]: real `grant_table_op` calls, frames mapped
/// in the vmap region.
pub struct XenGrants {
    entries: MappedFrames,
    status: MappedFrames,
}

impl XenGrants {
    /// Reserves room for `max_frames` table frames and their status frames.
    pub fn new(max_frames: u32) -> Result<Self, GrantError> {
        let status_frames = (max_frames * V2_PER_FRAME).div_ceil(STATUS_PER_FRAME);
        Ok(Self {
            entries: MappedFrames::new(max_frames)?,
            status: MappedFrames::new(status_frames)?,
        })
    }
}

impl XenGrants {
    /// Before a suspend: unmaps the table frames (Xen's own frames: the
    /// toolstack refuses to save page tables that map them). Returns how
    /// many entry frames were mapped. Refused with status frames (v2).
    ///
    /// # Safety
    /// Nothing may read or write the entries until
    /// [`resume_frames`](Self::resume_frames) maps frames there again.
    pub unsafe fn suspend_frames(&mut self) -> Result<u32, GrantError> {
        if !self.status.mfns.is_empty() {
            return Err(GrantError::Mapping {
                what: "suspend with grant table v2",
                error: XenError::EOPNOTSUPP,
            });
        }
        let n = self.entries.mfns.len() as u32;
        // SAFETY: passed on from the caller: no entry is used meanwhile.
        unsafe { self.entries.clear() }?;
        Ok(n)
    }

    /// After a suspend: asks Xen for `n` table frames (the same ones when
    /// the suspend was cancelled, fresh ones in a restored domain, whose
    /// table Xen starts empty) and maps them where the old ones were.
    pub fn resume_frames(&mut self, n: u32) -> Result<(), GrantError> {
        let mut mfns = vec![Mfn(0); n as usize];
        gnttab::setup_table(&mut mfns)
            .map_err(|error| GrantError::Hypervisor { op: "setup_table", error })?;
        self.entries.extend(&mfns)
    }
}

/// The grant table with its frames unmapped for a suspend, locked: nothing
/// can reach its entries until [`resume`](Self::resume) maps frames again.
pub struct Suspended {
    guard: spin::MutexGuard<'static, Option<grant_tables::GrantTable<XenGrants>>>,
    frames: u32,
}

impl Suspended {
    /// Unmaps the frames of the table behind `guard`.
    pub fn new(
        mut guard: spin::MutexGuard<'static, Option<grant_tables::GrantTable<XenGrants>>>,
    ) -> Result<Self, GrantError> {
        let t = guard
            .as_mut()
            .ok_or(GrantError::Mapping { what: "no grant table", error: XenError::ENOENT })?;
        // SAFETY: the guard moves into `Suspended`, which gives no access
        // to the table until `resume` has mapped frames again.
        let frames = unsafe { t.hypervisor().suspend_frames() }?;
        Ok(Suspended { guard, frames })
    }

    /// Maps the table's frames again (see [`XenGrants::resume_frames`]).
    pub fn resume(mut self) -> Result<(), GrantError> {
        match self.guard.as_mut() {
            Some(t) => t.hypervisor().resume_frames(self.frames),
            None => Ok(()),
        }
    }
}

impl Hypervisor for XenGrants {
    fn query_size(&mut self) -> Result<(u32, u32), GnttabError> {
        gnttab::query_size()
    }

    fn grow(&mut self, nr_frames: u32, version: Version) -> Result<Entries, GrantError> {
        if crate::pvh::active() {
            return grow_pvh(nr_frames, version);
        }
        let mut mfns = vec![Mfn(0); nr_frames as usize];
        gnttab::setup_table(&mut mfns)
            .map_err(|error| GrantError::Hypervisor { op: "setup_table", error })?;
        self.entries.extend(&mfns)?;
        Ok(match version {
            Version::V1 => {
                Entries::V1(self.entries.slice::<GrantEntryV1>((nr_frames * V1_PER_FRAME) as usize))
            }
            Version::V2 => {
                let n = nr_frames * V2_PER_FRAME;
                let mut smfns = vec![Mfn(0); n.div_ceil(STATUS_PER_FRAME) as usize];
                gnttab::get_status_frames(&mut smfns)
                    .map_err(|error| GrantError::Hypervisor { op: "get_status_frames", error })?;
                self.status.extend(&smfns)?;
                Entries::V2 {
                    entries: self.entries.slice::<GrantEntryV2>(n as usize),
                    status: self.status.slice::<GrantStatus>(n as usize),
                }
            }
        })
    }

    fn set_version(&mut self, version: Version) -> Result<(), GrantError> {
        if version == Version::V1 && !self.status.mfns.is_empty() {
            // SAFETY: GrantTable::set_version drops its entry slices before
            // calling this, and nothing else holds status slices.
            unsafe { self.status.clear() }?;
        }
        let now = gnttab::set_version(version)
            .map_err(|error| GrantError::Hypervisor { op: "set_version", error })?;
        if now != version {
            return Err(GrantError::Hypervisor {
                op: "set_version",
                error: GnttabError::Hypercall(XenError::EINVAL),
            });
        }
        Ok(())
    }

    /// Only the platform's shared pages: memory Rust sees as atomics,
    /// whose frames the platform itself finds ([`Grantable`] is sealed).
    type Page = dyn Grantable;
    type Hold = Hold;

    fn share(&mut self, page: &dyn Grantable, index: usize) -> Option<(Mfn, Hold)> {
        page.share(index)
    }
}

/// PVH: the table frames are put at fixed guest frames by
/// `XENMEM_add_to_physmap` and seen through the identity map.
fn grow_pvh(nr_frames: u32, version: Version) -> Result<Entries, GrantError> {
    use crate::pvh::grants as g;
    let hv = |op| move |error| GrantError::Hypervisor { op, error: GnttabError::Hypercall(error) };
    /// `n` grant structs at `va`.
    ///
    /// # Safety
    /// `va` must be the first of consecutive table frames Xen put into our
    /// physical space (identity-mapped) for the guest's life, holding at
    /// least `n` values of the all-atomics `T`.
    unsafe fn frames<T>(va: usize, n: u32) -> &'static [T] {
        // SAFETY: as the caller promises; Xen writes the frames
        // concurrently, so only shared references to atomics are made.
        unsafe { core::slice::from_raw_parts(va as *const T, n as usize) }
    }
    let entries = g::entry_frames(nr_frames).map_err(hv("add_to_physmap(grant_table)"))?;
    Ok(match version {
        // SAFETY: entry_frames put nr_frames frames at `entries`.
        Version::V1 => Entries::V1(unsafe { frames(entries, nr_frames * V1_PER_FRAME) }),
        Version::V2 => {
            let n = nr_frames * V2_PER_FRAME;
            let status = g::status_frames(n.div_ceil(STATUS_PER_FRAME))
                .map_err(hv("add_to_physmap(grant_table status)"))?;
            // SAFETY: entry_frames and status_frames put the frames holding
            // `n` entries and `n` status words at `entries` and `status`.
            unsafe { Entries::V2 { entries: frames(entries, n), status: frames(status, n) } }
        }
    })
}

/// Free pages of the vmap region for grant mappings, reused.
static SLOTS: Mutex<Vec<VirtAddr>> = Mutex::new(Vec::new());

/// A page another domain granted, mapped at a page of the vmap region
/// (`GNTMAP_host_map`). Seen only as atomics: the granter writes it too.
pub struct Mapping {
    va: VirtAddr,
    handle: GrantHandle,
}

impl Mapping {
    /// Maps grant `gref` of `dom` (its real id: Xen's map path does not
    /// take `DOMID_SELF`).
    pub fn new(dom: DomId, gref: GrantRef, readonly: bool) -> Result<Mapping, GrantError> {
        let va = match SLOTS.lock().pop() {
            Some(va) => va,
            // PVH: Xen maps the grant at a guest frame (GFN = address).
            None if crate::pvh::active() => VirtAddr(
                crate::pvh::grants::map_slot().map_err(mapping("reserving a mapping slot"))? as u64,
            ),
            None => vmap::reserve(1).map_err(mapping("reserving a mapping slot"))?,
        };
        let flags = if readonly { gntmap::READONLY } else { 0 };
        // SAFETY: `va` is a page of the vmap region with nothing mapped (a
        // fresh page, or a slot whose mapping was unmapped before it was
        // returned); its page table exists. Xen maps the granted frame.
        match unsafe { gnttab::map_grant_ref(va.0, dom, gref, flags) } {
            Ok(handle) => Ok(Mapping { va, handle }),
            Err(error) => {
                SLOTS.lock().push(va);
                Err(GrantError::Hypervisor { op: "map_grant_ref", error })
            }
        }
    }

    /// The page's words. Writes to a read-only mapping fault.
    pub fn words(&self) -> &[AtomicU64] {
        // SAFETY: the page is mapped (by Xen, to the granted frame) while
        // `self` lives; `unmap` and drop take `self`, so no borrow outlives
        // the mapping. Atomics: the granter may write concurrently.
        unsafe { core::slice::from_raw_parts(self.va.0 as *const AtomicU64, PAGE_SIZE / 8) }
    }

    /// The page as 32-bit words, the view a shared ring's indices need
    /// (`pv_drivers::ring`: the tour maps its own ring as a backend would).
    /// Use one view of a mapping at a time: the same bytes through two
    /// atomic widths at once is not a pattern Rust's memory model covers.
    pub fn words32(&self) -> &[AtomicU32] {
        // SAFETY: as for `words`: mapped while `self` lives, only atomic
        // access through shared references; 4096 bytes are 1024 words.
        unsafe { core::slice::from_raw_parts(self.va.0 as *const AtomicU32, PAGE_SIZE / 4) }
    }

    pub fn va(&self) -> VirtAddr {
        self.va
    }

    /// Unmaps the page (`GNTTABOP_unmap_grant_ref`); the granter can then
    /// revoke its grant.
    pub fn unmap(self) -> Result<(), GrantError> {
        let r = self.unmap_inner();
        core::mem::forget(self);
        r
    }

    fn unmap_inner(&self) -> Result<(), GrantError> {
        // SAFETY: `self` is being consumed, so no borrow of `words` lives.
        let r = unsafe { gnttab::unmap_grant_ref(self.va.0, self.handle) }
            .map_err(|error| GrantError::Hypervisor { op: "unmap_grant_ref", error });
        let cleared = crate::pvh::active() || vmap::lookup(self.va).is_none_or(|p| !p.present());
        if r.is_ok() && cleared {
            SLOTS.lock().push(self.va);
        }
        // A slot Xen did not clear is not reused.
        r
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if let Err(e) = self.unmap_inner() {
            log::warn!("grant mapping at {}: {e}", self.va);
        }
    }
}

/// Runs `batch` (`GNTTABOP_copy`) after checking each destination: a
/// frame of ours must be one of `dests`; a grant of ours must grant one of
/// `dests` (`own` is this domain's id and `frame_of` looks our grants up);
/// a grant of another domain is that domain's memory. So Xen only writes
/// memory Rust sees as atomics.
pub fn copy(
    batch: &mut CopyBatch,
    own: DomId,
    dests: &[&SharedPage],
    frame_of: impl Fn(GrantRef) -> Option<Mfn>,
) -> Result<usize, CopyError> {
    let ours = |d: u16| d == own.0 || d == DomId::SELF.0;
    let allowed = |m: Mfn| dests.iter().any(|p| p.frame() == m);
    for (index, op) in batch.ops().iter().enumerate() {
        let d = op.dest;
        let ok = if op.flags & gntcopy::DEST_GREF != 0 {
            !ours(d.domid) || frame_of(GrantRef(d.u as u32)).is_some_and(allowed)
        } else {
            ours(d.domid) && allowed(Mfn(d.u))
        };
        if !ok {
            return Err(CopyError::Op {
                index,
                status: hypercall::abi::grant_table::GntStatus(
                    hypercall::abi::grant_table::gntst::PERMISSION_DENIED,
                ),
            });
        }
    }
    // SAFETY: every destination was checked above to be a SharedPage (only
    // ever accessed as atomics) or another domain's page.
    batch.flush(|ops| unsafe { gnttab::copy(ops) })
}
