//! A probe for TLB shootdowns: one virtual page whose mapping the caller
//! moves from frame A to frame B with a flush of its own vCPU only, so that
//! another vCPU that read the page before may still translate it to A
//! until its TLB is flushed. Each frame holds a stamp; reading the page
//! tells which frame a vCPU's translation names.

use crate::memory::frames::Frames;
use crate::memory::layout::VirtAddr;
use hypercall::abi::xen::{pte, Uvmf};
use hypercall::ops::mmu;
use hypercall::XenError;

/// The page, its two frames and the stamps in them. Dropping it maps the
/// page back (PV: with a flush on every vCPU) and frees the frames.
pub struct TlbProbe {
    /// Three frames from the allocator: the probe page's own (PV), A, B.
    frames: Option<Frames>,
    va: usize,
    /// The probe page's own entry (PV), to put back.
    own_pte: u64,
    stamps: (u64, u64),
}

/// The stamp in frame A (B holds its complement).
const STAMP_A: u64 = 0x5eed_7b0a_0000_000a;

impl TlbProbe {
    /// Maps the probe page to frame A (flushing this vCPU only). PV: the
    /// page is the direct-map page of a frame taken for it; PVH: the
    /// scratch page of `pvh::memory`.
    pub fn new() -> Result<TlbProbe, XenError> {
        let frames = crate::pv::mm::alloc_frames(3).ok_or(XenError::ENOMEM)?;
        let map = crate::pv::mm::direct_map();
        let (own, a, b) = (frames.pfn(0), frames.pfn(1), frames.pfn(2));
        let stamps = (STAMP_A, !STAMP_A);
        for (pfn, stamp) in [(a, stamps.0), (b, stamps.1)] {
            // SAFETY: the frames were just taken from the allocator
            // (exclusive, mapped writable in the direct map).
            unsafe { (map.virt(pfn).0 as *mut u64).write_volatile(stamp) };
        }
        let mut probe = TlbProbe { frames: Some(frames), va: 0, own_pte: 0, stamps };
        if crate::is_pvh() {
            probe.va = crate::pvh::memory::SCRATCH_VA as usize;
            // SAFETY: nothing refers to the scratch page (kept out of the
            // allocator); frame A is ours and only read through the alias.
            unsafe { crate::pvh::memory::map_scratch(Some(a)) };
        } else {
            probe.va = map.virt(own).0 as usize;
            probe.own_pte =
                crate::pv::mm::lookup(VirtAddr(probe.va as u64)).ok_or(XenError::ENOENT)?.0;
            probe.map(a)?;
        }
        Ok(probe)
    }

    /// PV: maps the probe page read-only to `frame`, flushing this vCPU.
    fn map(&self, pfn: hypercall::Pfn) -> Result<(), XenError> {
        let mfn = crate::pv::pfn_to_mfn(pfn).ok_or(XenError::EINVAL)?;
        let entry = mfn.addr().0 | pte::PRESENT | pte::USER | pte::ACCESSED;
        // SAFETY: the probe page is a frame the probe owns (taken from the
        // allocator), reached only by volatile reads through `read`; the
        // new frame is ours, mapped read-only, so the alias cannot write.
        unsafe { mmu::update_va_mapping(self.va, entry, Uvmf::INVLPG) }
    }

    /// The word at the start of the probe page, through this vCPU's
    /// translation: [`stamps`](Self::stamps)`.0` for frame A, `.1` for B.
    pub fn read(&self) -> u64 {
        // SAFETY: the page is mapped for as long as the probe lives (to A,
        // B or its own frame), readable, and never written through Rust
        // references while mapped here.
        unsafe { (self.va as *const u64).read_volatile() }
    }

    /// The probe page's address (what a shootdown names).
    pub fn va(&self) -> usize {
        self.va
    }

    /// The stamps of frames A and B.
    pub fn stamps(&self) -> (u64, u64) {
        self.stamps
    }

    /// Maps the probe page to frame B, flushing only this vCPU's TLB.
    pub fn switch_to_b(&self) -> Result<(), XenError> {
        let b = self.frames.as_ref().ok_or(XenError::EINVAL)?.pfn(2);
        if crate::is_pvh() {
            // SAFETY: as in `new`, for frame B.
            unsafe { crate::pvh::memory::map_scratch(Some(b)) };
            Ok(())
        } else {
            self.map(b)
        }
    }
}

impl Drop for TlbProbe {
    fn drop(&mut self) {
        if crate::is_pvh() {
            // SAFETY: the scratch page goes back to its own frame; only the
            // probe read through it. Another vCPU may still translate it to
            // B: the caller shoots it down before reading it again.
            unsafe { crate::pvh::memory::map_scratch(None) };
        } else {
            // SAFETY: the page's own entry, as before `new`; every vCPU
            // drops its translation of the alias before the frame is free.
            let r =
                unsafe { mmu::update_va_mapping(self.va, self.own_pte, Uvmf::INVLPG.all_vcpus()) };
            if r.is_err() {
                // Still an alias somewhere: never hand the frames out again.
                if let Some(f) = self.frames.take() {
                    let _ = f.keep();
                }
            }
        }
        if let Some(f) = self.frames.take() {
            crate::pv::mm::free_frames_run(f);
        }
    }
}
