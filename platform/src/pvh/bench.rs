//! What the hypercall benchmark times under PVH in place of `mmu_update`
//! and `update_va_mapping`: a page-table update is a store to the PTE and
//! an `invlpg`, with no exit to Xen (nested paging) or a trap Xen handles
//! (shadow paging); a context switch's CR3 reload flushes the TLB.

use super::memory::{map_scratch, SCRATCH_VA};
use crate::pv::mm;
use hypercall::Pfn;

/// Two frames of ours, each holding its own stamp in its first word,
/// mapped in turn at the scratch page.
pub struct PteScratch {
    frames: Option<crate::memory::frames::Frames>,
    start: Pfn,
    next: u64,
}

impl PteScratch {
    /// Takes two frames from the allocator and stamps them.
    pub fn new() -> Option<PteScratch> {
        let frames = mm::alloc_frames(2)?;
        let start = frames.start();
        for (i, pfn) in (frames.range().start.0..frames.range().end.0).enumerate() {
            let va = mm::direct_map().virt(Pfn(pfn));
            // SAFETY: the frames were just taken from the allocator:
            // exclusive to this struct, mapped writable in the direct map.
            unsafe { (va.0 as *mut u64).write_volatile(stamp(i as u64)) };
        }
        Some(PteScratch { frames: Some(frames), start, next: 0 })
    }

    /// Maps the scratch page to the other frame (PTE store + `invlpg`) and
    /// reads its stamp through the new mapping: whether it is that frame's.
    pub fn flip(&mut self) -> bool {
        let i = self.next % 2;
        self.next += 1;
        // SAFETY: the scratch page is referenced by nothing (see
        // `map_scratch`); both frames are ours, used only by this struct.
        unsafe {
            map_scratch(Some(Pfn(self.start.0 + i)));
            (SCRATCH_VA as *const u64).read_volatile() == stamp(i)
        }
    }
}

impl Drop for PteScratch {
    fn drop(&mut self) {
        // SAFETY: maps the scratch page back to its own frame; no
        // reference into it is alive (`flip` only reads a copy).
        unsafe { map_scratch(None) };
        if let Some(f) = self.frames.take() {
            mm::free_frames_run(f);
        }
    }
}

fn stamp(i: u64) -> u64 {
    0x5C7A_7C40_0000_0000 | i
}

/// Reloads CR3 with its own value (a context switch to the same address
/// space: every non-global TLB entry goes). Returns whether CR3 holds the
/// same root afterwards.
pub fn cr3_reload() -> bool {
    use x86_64::registers::control::Cr3;
    let (frame, flags) = Cr3::read();
    // SAFETY: the same root table and flags: the address space does not change.
    unsafe { Cr3::write(frame, flags) };
    Cr3::read().0 == frame
}
