//! Sound wrappers for operations the hypercall benchmark times, where the
//! raw hypercall is `unsafe` because in general it can change mappings.

use super::mm;
use crate::memory::layout::VirtAddr;
use alloc::vec::Vec;
use hypercall::abi::mmu::{MmuUpdate, MulticallEntry};
use hypercall::abi::xen::Uvmf;
use hypercall::ops::{mmu, multicall};
use hypercall::raw::nr;
use hypercall::{XenError, PAGE_SIZE};

/// `pages` pages of our own, whose page-table entries can be rewritten
/// with their current values: a real, validated `mmu_update` that changes
/// nothing.
pub struct Scratch {
    /// Owns the pages, so nothing else (the balloon included) can take them
    /// while the entries are rewritten.
    _buf: Vec<u8>,
    reqs: Vec<MmuUpdate>,
    first_va: usize,
    first_pte: u64,
}

impl Scratch {
    pub fn new(pages: usize) -> Option<Scratch> {
        let mut buf = alloc::vec![0u8; (pages + 1) * PAGE_SIZE];
        let start = (buf.as_mut_ptr() as usize).next_multiple_of(PAGE_SIZE);
        let mut reqs = Vec::with_capacity(pages);
        for i in 0..pages {
            let (entry, pte) = mm::leaf_entry(VirtAddr((start + i * PAGE_SIZE) as u64))?;
            reqs.push(MmuUpdate::pt(entry, pte.0));
        }
        let first_pte = reqs.first()?.val;
        Some(Scratch { _buf: buf, reqs, first_va: start, first_pte })
    }

    /// Rewrites the first `n` entries with the values they hold.
    pub fn rewrite(&self, n: usize) -> Result<(), XenError> {
        let n = n.min(self.reqs.len());
        // SAFETY: each request stores into a leaf entry of a page this
        // struct owns the value the entry already holds (read when the
        // struct was made, and nothing remaps owned heap pages), so no
        // mapping changes.
        unsafe { mmu::mmu_update(&self.reqs[..n]) }.map_err(|e| e.error)
    }

    /// `update_va_mapping` of the first page to the entry it holds, with
    /// a single-page flush.
    pub fn remap_first(&self) -> Result<(), XenError> {
        // SAFETY: as for `rewrite`: the page keeps its frame and rights.
        unsafe { mmu::update_va_mapping(self.first_va, self.first_pte, Uvmf::INVLPG) }
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
