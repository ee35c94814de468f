//! Sound wrappers for operations the hypercall benchmark times, where the
//! raw hypercall is `unsafe` because in general it can change mappings.

use super::mm;
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
    /// Owns the pages, so nothing else (the balloon included) can take them
    /// while the entries are rewritten.
    _buf: Vec<u8>,
    /// The entries as they were, and with the software bit flipped.
    original: Vec<MmuUpdate>,
    flipped: Vec<MmuUpdate>,
    /// Which of the two the last [`Scratch::flip`] stored.
    state: Cell<bool>,
    first_va: usize,
}

impl Scratch {
    pub fn new(pages: usize) -> Option<Scratch> {
        let mut buf = alloc::vec![0u8; (pages + 1) * PAGE_SIZE];
        let start = (buf.as_mut_ptr() as usize).next_multiple_of(PAGE_SIZE);
        let mut original = Vec::with_capacity(pages);
        for i in 0..pages {
            let (entry, pte) = mm::leaf_entry(VirtAddr((start + i * PAGE_SIZE) as u64))?;
            original.push(MmuUpdate::pt(entry, pte.0));
        }
        let flipped = original
            .iter()
            .map(|r| MmuUpdate::pt(MachineAddr(r.ptr), r.val ^ pte::AVAIL0))
            .collect();
        original.first()?;
        Some(Scratch { _buf: buf, original, flipped, state: Cell::new(false), first_va: start })
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
        // The pages go back to the heap as they came.
        if self.state.get() {
            let _ = self.restore();
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
