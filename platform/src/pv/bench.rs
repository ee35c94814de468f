//! Sound wrappers for operations the hypercall benchmark times, where the
//! raw hypercall is `unsafe` because in general it can change mappings.

use super::mm;
use crate::memory::frames::Frames;
use crate::memory::layout::VirtAddr;
use alloc::vec::Vec;
use core::cell::Cell;
use hypercall::abi::mmu::{MmuUpdate, MulticallEntry};
use hypercall::abi::xen::{pte, Uvmf};
use hypercall::ops::{mmu, multicall};
use hypercall::raw::nr;
use hypercall::types::MachineAddr;
use hypercall::{XenError, PAGE_SIZE};

/// `pages` pages of our own whose leaf page-table entries the benchmark
/// rewrites: each `mmu_update` stores every entry with its software bit
/// (`AVAIL0`, ignored by the CPU) flipped from the previous call, so each
/// call changes every entry it names and the result can be read back. The
/// frames and rights never change.
pub struct Scratch {
    /// Owns the frames (taken from the frame allocator, given back on
    /// drop), so nothing else (the heap, the balloon) can take them while
    /// the entries are rewritten.
    frames: Option<Frames>,
    /// The entries as they were, and with the software bit flipped.
    original: Vec<MmuUpdate>,
    flipped: Vec<MmuUpdate>,
    /// Which of the two the last [`Scratch::flip`] stored.
    state: Cell<bool>,
    first_va: usize,
}

impl Scratch {
    pub fn new(pages: usize) -> Option<Scratch> {
        let frames = mm::alloc_frames(pages as u64)?;
        let start = mm::direct_map().virt(frames.start()).0 as usize;
        let mut original = Vec::with_capacity(pages);
        for i in 0..pages {
            match mm::leaf_entry(VirtAddr((start + i * PAGE_SIZE) as u64)) {
                Some((entry, pte)) => original.push(MmuUpdate::pt(entry, pte.0)),
                None => {
                    mm::free_frames_run(frames);
                    return None;
                }
            }
        }
        let flipped = original
            .iter()
            .map(|r| MmuUpdate::pt(MachineAddr(r.ptr), r.val ^ pte::AVAIL0))
            .collect();
        Some(Scratch {
            frames: Some(frames),
            original,
            flipped,
            state: Cell::new(false),
            first_va: start,
        })
    }

    fn va(&self, i: usize) -> VirtAddr {
        VirtAddr((self.first_va + i * PAGE_SIZE) as u64)
    }

    fn current(&self) -> &[MmuUpdate] {
        if self.state.get() {
            &self.flipped
        } else {
            &self.original
        }
    }

    /// One `mmu_update` of the first `n` entries, each with its software
    /// bit flipped from what the last call stored.
    pub fn flip(&self, n: usize) -> Result<(), XenError> {
        let n = n.min(self.original.len());
        self.state.set(!self.state.get());
        // SAFETY: each request stores into a leaf entry of a page this
        // struct owns the value it held when the struct was made, with at
        // most the software bit changed, which the CPU ignores: the same
        // frame with the same rights, so no mapping changes.
        unsafe { mmu::mmu_update(&self.current()[..n]) }.map_err(|e| e.error)
    }

    /// How many of the first `n` entries hold what the last call stored
    /// (read back from the page tables).
    pub fn holding(&self, n: usize) -> usize {
        let want = self.current();
        (0..n.min(want.len()))
            .filter(|&i| mm::lookup(self.va(i)).is_some_and(|p| p.0 == want[i].val))
            .count()
    }

    /// Stores every entry's original value again; whether all hold it.
    pub fn restore(&self) -> bool {
        self.state.set(false);
        // SAFETY: as for `flip`: the values the entries held at first.
        let ok = unsafe { mmu::mmu_update(&self.original) }.is_ok();
        ok && self.holding(self.original.len()) == self.original.len()
    }

    /// `update_va_mapping` of the first page to its original entry, with a
    /// single-page flush.
    pub fn remap_first(&self) -> Result<(), XenError> {
        // SAFETY: as for `flip`: the page keeps its frame and rights.
        unsafe { mmu::update_va_mapping(self.first_va, self.original[0].val, Uvmf::INVLPG) }
    }

    /// Whether the first entry holds its original value.
    pub fn first_is_original(&self) -> bool {
        mm::lookup(self.va(0)).is_some_and(|p| p.0 == self.original[0].val)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // The frames go back to the allocator as they came; one whose
        // entry could not be restored is kept out of it for good.
        let restored = !self.state.get() || self.restore();
        if let Some(frames) = self.frames.take() {
            if restored {
                mm::free_frames_run(frames);
            } else {
                let _kept = frames.keep();
            }
        }
    }
}

/// `n` `xen_version(XENVER_version)` calls in one multicall.
pub fn multicall_xen_version(entries: &mut [MulticallEntry]) -> Result<(), XenError> {
    for e in entries.iter_mut() {
        *e = MulticallEntry { op: nr::XEN_VERSION.into(), result: 0, args: [0; 6] };
    }
    // SAFETY: XENVER_version takes no pointer and changes nothing.
    unsafe { multicall::multicall(entries) }
}
