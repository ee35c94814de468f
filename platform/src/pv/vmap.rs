//! A region of virtual address space for frames that are not ours: grant
//! table frames Xen shares with us, and pages other domains grant us
//! (`GNTTABOP_map_grant_ref` with `GNTMAP_host_map` needs a virtual
//! address whose page table exists). None of these frames is in the P2M,
//! so they cannot live in the direct map.
//!
//! The region is 1 GiB at [`BASE`] (one L4 slot the direct map never
//! uses), handed out by a bump pointer and never returned: its users keep
//! their ranges for the guest's life and reuse them. Page tables are made
//! on demand from frames of the frame allocator, as the direct map's are
//! (never heap pages: the heap's memory must stay writable and its own):
//! zeroed, made read-only in the direct map (Xen refuses a writable page
//! table), kept for good, then linked with `mmu_update`, which makes Xen
//! validate them.

use crate::memory::layout::VirtAddr;
use crate::memory::pagetable::{entry_addr, Level, Pte, DATA_FLAGS, TABLE_FLAGS};
use crate::pv::mm;
use core::sync::atomic::{AtomicU64, Ordering};
use hypercall::abi::mmu::MmuUpdate;
use hypercall::ops::mmu;
use hypercall::{Mfn, XenError, PAGE_SIZE};
use spin::Mutex;

/// Start of the region: L4 slot 384, past Xen's slots (256..272) and far
/// from the direct map at the bottom of the address space.
pub const BASE: u64 = 0xFFFF_C000_0000_0000;
/// Size of the region.
pub const SIZE: u64 = 1 << 30;

const PAGE: u64 = PAGE_SIZE as u64;

/// The next unused page of the region.
static NEXT: Mutex<u64> = Mutex::new(BASE);

/// Reads entry `index` of the page table in frame `table`.
fn read_entry(table: Mfn, index: usize) -> Option<Pte> {
    let pfn = super::mfn_to_pfn(table)?;
    let map = mm::direct_map();
    map.pfn(map.virt(pfn))?;
    let entry = (map.virt(pfn).0 + index as u64 * 8) as *const AtomicU64;
    // SAFETY: every page-table frame of this guest is one of its own pages
    // (Xen only accepts those), mapped read-only in the direct map, which
    // covers all pfns (checked above); the entry is an aligned u64 in it.
    // Xen may set A/D bits concurrently: an atomic load.
    Some(Pte(unsafe { (*entry).load(Ordering::Relaxed) }))
}

/// A fresh, zeroed page-table frame from the frame allocator, made
/// read-only in the direct map and kept for good (a page table of the
/// region lives as long as the guest).
fn new_table() -> Result<Mfn, XenError> {
    let frame = mm::alloc_frames(1).ok_or(XenError::ENOMEM)?;
    let pfn = frame.start();
    let Some(mfn) = super::pfn_to_mfn(pfn) else {
        mm::free_frames_run(frame);
        return Err(XenError::EFAULT);
    };
    let va = mm::direct_map().virt(pfn).0 as usize;
    // SAFETY: the frame was just taken from the allocator, so nothing else
    // refers to it; the direct map maps it writable.
    unsafe { core::ptr::write_bytes(va as *mut u8, 0, PAGE_SIZE) };
    // SAFETY: nothing refers to the frame (above); from here on it is a
    // page table, which the direct map may only map read-only.
    let ro = unsafe {
        mmu::update_va_mapping(
            va,
            Pte::new(mfn, DATA_FLAGS).read_only().0,
            crate::smp::invlpg_scope(),
        )
    };
    match ro {
        Ok(()) => {
            let _table = frame.keep();
            Ok(mfn)
        }
        Err(e) => {
            // Still writable and referenced by nothing: back it goes.
            mm::free_frames_run(frame);
            Err(e)
        }
    }
}

/// The L1 table and index for `va`, making missing tables on the way.
fn l1_slot(va: u64, create: bool) -> Result<(Mfn, usize), XenError> {
    let mut table = mm::root();
    let mut level = Level::L4;
    while let Some(below) = level.below() {
        let i = level.index(VirtAddr(va));
        let e = read_entry(table, i).ok_or(XenError::EFAULT)?;
        table = if e.present() {
            e.mfn()
        } else if create {
            let child = new_table()?;
            let link = [MmuUpdate::pt(entry_addr(table, i), Pte::new(child, TABLE_FLAGS).0)];
            // SAFETY: the entry was empty, so no mapping changes; the new
            // table is zeroed and mapped nowhere writable.
            unsafe { mmu::mmu_update(&link) }.map_err(|e| e.error)?;
            child
        } else {
            return Err(XenError::ENOENT);
        };
        level = below;
    }
    Ok((table, Level::L1.index(VirtAddr(va))))
}

/// `pages` unused pages of the region, with their page tables made.
pub fn reserve(pages: u64) -> Result<VirtAddr, XenError> {
    let mut next = NEXT.lock();
    let start = *next;
    let end =
        start.checked_add(pages * PAGE).filter(|&e| e <= BASE + SIZE).ok_or(XenError::ENOMEM)?;
    // One walk per L1 table (2 MiB) the range touches.
    let mut va = start;
    while va < end {
        l1_slot(va, true)?;
        va = (va & !(Level::L2.span() - 1)) + Level::L2.span();
    }
    *next = end;
    Ok(VirtAddr(start))
}

/// The leaf entry for `va` of the region, if its table exists.
pub fn lookup(va: VirtAddr) -> Option<Pte> {
    let (table, i) = l1_slot(va.0, false).ok()?;
    read_entry(table, i)
}

/// Maps `mfns` at consecutive pages from `va` (reserved by [`reserve`]).
///
/// # Safety
/// The frames must not be memory Rust owns elsewhere (they are foreign or
/// Xen's), and nothing may refer to what the pages mapped before.
pub unsafe fn map(va: VirtAddr, mfns: &[Mfn], writable: bool) -> Result<(), XenError> {
    let mut reqs = [MmuUpdate::default(); 64];
    for (chunk_no, chunk) in mfns.chunks(reqs.len()).enumerate() {
        for (k, (req, &mfn)) in reqs.iter_mut().zip(chunk).enumerate() {
            let page = va.0 + (chunk_no * 64 + k) as u64 * PAGE;
            let (table, i) = l1_slot(page, false)?;
            let pte = Pte::new(mfn, DATA_FLAGS);
            let pte = if writable { pte } else { pte.read_only() };
            *req = MmuUpdate::pt(entry_addr(table, i), pte.0);
        }
        // SAFETY: the caller vouches for the frames and the old mappings.
        unsafe { mmu::mmu_update(&reqs[..chunk.len()]) }.map_err(|e| e.error)?;
    }
    Ok(())
}

/// Unmaps `pages` pages from `va` and flushes their translations.
///
/// # Safety
/// Nothing may refer to the pages any more.
pub unsafe fn unmap(va: VirtAddr, pages: u64) -> Result<(), XenError> {
    for k in 0..pages {
        let page = va.0 + k * PAGE;
        // SAFETY: passed on from the caller.
        // Every vCPU: another may still translate the page (docs/smp.md).
        unsafe { mmu::update_va_mapping(page as usize, 0, crate::smp::invlpg_scope()) }?;
    }
    Ok(())
}
