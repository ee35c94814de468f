//! Grant table frames of a PVH guest: Xen does not hand out machine
//! frames to map (`GNTTABOP_setup_table` is for PV guests); the guest
//! names guest frames and `XENMEM_add_to_physmap(XENMAPSPACE_grant_table)`
//! puts table frame `idx` there. The frames go into a range of guest
//! physical space that holds no RAM (above the HVM MMIO hole's start,
//! below the special pages), identity-mapped by the boot map.

use core::sync::atomic::{AtomicU32, Ordering};
use hypercall::abi::hvm::{mapspace, MAPIDX_GRANT_TABLE_STATUS};
use hypercall::ops::hvm as hvm_op;
use hypercall::{Pfn, XenError, PAGE_SIZE};

/// First guest frame of the entry frames (`HVM_BELOW_4G_MMIO_START`: no
/// RAM there, and a PVH domain has no emulated devices).
pub const ENTRY_GFN_BASE: u64 = 0xF0000;
/// First guest frame of the status frames (v2).
pub const STATUS_GFN_BASE: u64 = 0xF1000;
/// Frames of each kind that fit before the next range.
pub const MAX_FRAMES: u32 = 0x1000;

static ENTRY_FRAMES: AtomicU32 = AtomicU32::new(0);
static STATUS_FRAMES: AtomicU32 = AtomicU32::new(0);

fn extend(count: &AtomicU32, base: u64, flag: u64, want: u32) -> Result<usize, XenError> {
    if want > MAX_FRAMES {
        return Err(XenError::E2BIG);
    }
    let have = count.load(Ordering::Relaxed);
    for idx in have..want {
        // SAFETY: the target frame lies in a range of guest physical space
        // with no RAM behind it that only this module uses: no Rust
        // reference refers to its old contents. Rust reads the table frames
        // only as atomic grant entries.
        unsafe {
            hvm_op::add_to_physmap(
                mapspace::GRANT_TABLE,
                u64::from(idx) | flag,
                Pfn(base + u64::from(idx)),
            )?
        };
        count.store(idx + 1, Ordering::Relaxed);
    }
    Ok((base as usize) * PAGE_SIZE)
}

/// Puts entry frames `0..nr_frames` into guest physical space; returns
/// the address of frame 0 (the frames are consecutive).
pub fn entry_frames(nr_frames: u32) -> Result<usize, XenError> {
    extend(&ENTRY_FRAMES, ENTRY_GFN_BASE, 0, nr_frames)
}

/// Puts status frames `0..nr_frames` (v2) into guest physical space.
pub fn status_frames(nr_frames: u32) -> Result<usize, XenError> {
    extend(&STATUS_FRAMES, STATUS_GFN_BASE, MAPIDX_GRANT_TABLE_STATUS, nr_frames)
}

/// First guest frame of the slots where pages granted to us are mapped
/// (`GNTMAP_host_map` with a guest physical address).
pub const MAP_GFN_BASE: u64 = 0xF2000;
/// Slots available.
pub const MAP_SLOTS: u64 = 0x1000;

static NEXT_MAP_SLOT: AtomicU32 = AtomicU32::new(0);

/// A fresh mapping slot: the (identity-mapped) address of a guest frame
/// with no RAM behind it. Slots are reused by the caller, never returned.
pub fn map_slot() -> Result<usize, XenError> {
    let i = NEXT_MAP_SLOT.fetch_add(1, Ordering::Relaxed);
    if u64::from(i) >= MAP_SLOTS {
        return Err(XenError::ENOMEM);
    }
    Ok(((MAP_GFN_BASE + u64::from(i)) as usize) * PAGE_SIZE)
}

/// Entry frames and status frames in guest physical space now.
pub fn frames() -> (u32, u32) {
    (ENTRY_FRAMES.load(Ordering::Relaxed), STATUS_FRAMES.load(Ordering::Relaxed))
}

/// After a suspend: puts entry frames `0..n` back at the guest frames
/// they had. In a new domain (restore, migration) those frames hold RAM
/// the toolstack copied (or nothing) and Xen's table is new and empty; a
/// cancelled suspend finds them in place, and mapping them again is
/// harmless (Linux's `gnttab_resume` does the same in both cases). Xen
/// grows the new table as frame indices are named.
pub fn restore_entry_frames(n: u32) -> Result<(), XenError> {
    for idx in 0..n.min(MAX_FRAMES) {
        // SAFETY: the same reserved frames `extend` put the table at:
        // only this module uses them and Rust reads them only as atomic
        // grant entries, whichever page Xen puts behind them.
        unsafe {
            hvm_op::add_to_physmap(
                mapspace::GRANT_TABLE,
                u64::from(idx),
                Pfn(ENTRY_GFN_BASE + u64::from(idx)),
            )?
        };
    }
    Ok(())
}
