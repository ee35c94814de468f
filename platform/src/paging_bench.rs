//! What the paging benchmark (`app=bench bench.suite=paging`, `cargo
//! xtask bench paging`) times in every mode, with the unsafe parts kept
//! here: a page-fault round trip, a CR3 reload and a walk over a working
//! set larger than the TLB (docs/pvh.md, "Three ways of virtualizing
//! memory").
//!
//! - [`FaultPage`]: one page of ours that the benchmark unmaps and then
//!   touches. The touch faults; the fault path ([`fixup`], called first
//!   by every back end's trap handler) sees the armed page, maps it again
//!   and returns, and the touch completes. PV: Xen takes the `#PF`,
//!   bounces it to the guest's trap table, the handler maps the page with
//!   `update_va_mapping` and returns with `HYPERVISOR_iret`. PVH: the CPU
//!   delivers it through the guest's own IDT (with nested paging, no exit
//!   to Xen), the handler stores the PTE and returns with `iretq`; with
//!   shadow paging Xen sees the fault first and the PTE store traps.
//! - [`cr3_reload`]: a context switch to the same address space (PV:
//!   `MMUEXT_NEW_BASEPTR` with the current root, which Xen answers with a
//!   CR3 load of its own; PVH: `mov` to CR3).
//! - [`WalkSet`]: frames of ours read one word per page in a scattered
//!   order, after a TLB flush, so every page touched costs a TLB miss and
//!   a page walk (PV: 4-level walk of the guest's tables; PVH with nested
//!   paging: each level through the nested tables too). Under PVH the
//!   direct map is 2 MiB pages; [`WalkSet::small_pages`] splits the ones
//!   the set lies in so both modes can be compared on 4 KiB pages.

use crate::memory::frames::Frames;
use crate::pv::mm;
use crate::trap::TrapFrame;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use hypercall::abi::mmu::{ext, MmuextOp};
use hypercall::abi::xen::Uvmf;
use hypercall::ops::mmu;
use hypercall::{Pfn, PAGE_SIZE};

const PAGE: u64 = PAGE_SIZE as u64;
/// The `#PF` vector and the error code's "present" bit.
const VECTOR_PF: u64 = 14;
const PF_PRESENT: u64 = 1;

/// The page the fault path maps again (0: none armed).
static ARMED_VA: AtomicU64 = AtomicU64::new(0);
/// PV: the leaf entry the fault path puts back.
static ARMED_PTE: AtomicU64 = AtomicU64::new(0);
/// Faults [`fixup`] handled.
static FIXUPS: AtomicU64 = AtomicU64::new(0);
/// A [`FaultPage`] exists (there is one slot).
static TAKEN: AtomicBool = AtomicBool::new(false);

/// A page the benchmark unmaps and touches; see the module's comment.
/// Only one exists at a time.
pub struct FaultPage {
    /// PV: the page's frame, owned while the page is unmapped and mapped
    /// again. PVH: `None` (the fault page of `pvh::memory`, reserved).
    frames: Option<Frames>,
    va: u64,
    stamp: u64,
}

impl FaultPage {
    /// Takes the page (PV: a frame of the allocator, at its direct-map
    /// address; PVH: `pvh::memory::FAULT_VA`), stamps it and arms the
    /// fault path for it. `None` if one exists or no frame is free.
    pub fn new() -> Option<FaultPage> {
        if TAKEN.swap(true, Ordering::SeqCst) {
            return None;
        }
        let (frames, va, pte) = if crate::is_pvh() {
            (None, crate::pvh::memory::FAULT_VA, 0)
        } else {
            let Some(f) = mm::alloc_frames(1) else {
                TAKEN.store(false, Ordering::SeqCst);
                return None;
            };
            let va = mm::direct_map().virt(f.start()).0;
            let Some(pte) = mm::lookup(crate::memory::layout::VirtAddr(va)) else {
                mm::free_frames_run(f);
                TAKEN.store(false, Ordering::SeqCst);
                return None;
            };
            (Some(f), va, pte.0)
        };
        let stamp = 0xFA17_0000_0000_0000 | va;
        // SAFETY: the page is ours alone (a frame just taken from the
        // allocator, or the reserved fault page), mapped writable.
        unsafe { (va as *mut u64).write_volatile(stamp) };
        ARMED_PTE.store(pte, Ordering::SeqCst);
        ARMED_VA.store(va, Ordering::SeqCst);
        Some(FaultPage { frames, va, stamp })
    }

    /// Unmaps the page (and flushes its translation), so that the next
    /// [`touch`](Self::touch) faults. Whether it worked.
    pub fn unmap(&self) -> bool {
        if crate::is_pvh() {
            // SAFETY: nothing refers into the page: `touch` reads a copy
            // through a raw pointer.
            unsafe { crate::pvh::memory::set_fault_page(false) };
            true
        } else {
            // SAFETY: the frame is ours (`self.frames`) and nothing refers
            // into the page; a touch of it faults into `fixup`, which maps
            // the same frame again.
            unsafe { mmu::update_va_mapping(self.va as usize, 0, Uvmf::INVLPG) }.is_ok()
        }
    }

    /// Reads the page's first word: if it is unmapped, this takes the
    /// fault round trip (the handler maps it and the read completes).
    pub fn touch(&self) -> u64 {
        // SAFETY: the page is ours and either mapped (the read is plain)
        // or unmapped with the fault path armed for it, which maps the same
        // frame before the read is retried; if mapping failed the fault is
        // reported and the domain ends, so the read never sees another page.
        unsafe { (self.va as *const u64).read_volatile() }
    }

    /// What [`touch`](Self::touch) must read.
    pub fn stamp(&self) -> u64 {
        self.stamp
    }

    /// Page faults the fault path handled for this kind of page so far.
    pub fn fixups() -> u64 {
        FIXUPS.load(Ordering::SeqCst)
    }
}

impl Drop for FaultPage {
    fn drop(&mut self) {
        ARMED_VA.store(0, Ordering::SeqCst);
        let mapped = if crate::is_pvh() {
            // SAFETY: maps the reserved fault page to its own frame again.
            unsafe { crate::pvh::memory::set_fault_page(true) };
            true
        } else {
            let pte = ARMED_PTE.load(Ordering::SeqCst);
            // SAFETY: the page's own entry, as it was when taken.
            unsafe { mmu::update_va_mapping(self.va as usize, pte, Uvmf::INVLPG) }.is_ok()
        };
        if let Some(f) = self.frames.take() {
            if mapped {
                mm::free_frames_run(f);
            } else {
                // Not mapped again: the direct map has a hole there; the
                // frame stays out of the allocator.
                let _kept = f.keep();
            }
        }
        TAKEN.store(false, Ordering::SeqCst);
    }
}

/// Called by the fault path of every back end (after the probes'): a
/// not-present `#PF` on the armed [`FaultPage`] maps it again and resumes
/// the touch. Returns whether it did.
pub(crate) fn fixup(frame: &TrapFrame) -> bool {
    if frame.vector != VECTOR_PF || frame.error_code & PF_PRESENT != 0 {
        return false;
    }
    let va = ARMED_VA.load(Ordering::SeqCst);
    if va == 0 || crate::fault_address() & !(PAGE - 1) != va {
        return false;
    }
    let ok = if crate::is_pvh() {
        // SAFETY: maps the reserved fault page to its own frame.
        unsafe { crate::pvh::memory::set_fault_page(true) };
        true
    } else {
        // SAFETY: the armed page's own entry (its frame, owned by the
        // FaultPage); a not-present entry is never cached: no flush.
        unsafe { mmu::update_va_mapping(va as usize, ARMED_PTE.load(Ordering::SeqCst), Uvmf::NONE) }
            .is_ok()
    };
    if ok {
        FIXUPS.fetch_add(1, Ordering::SeqCst);
    }
    ok
}

/// Loads CR3 with the root it holds: a context switch to the same address
/// space (every non-global translation goes). PV: `MMUEXT_NEW_BASEPTR`
/// with the current root (Xen reloads CR3 itself); PVH: `mov` to CR3.
/// Whether it succeeded and the root is the same afterwards.
pub fn cr3_reload() -> bool {
    if crate::is_pvh() {
        return crate::pvh::bench::cr3_reload();
    }
    let root = mm::root();
    let op = [MmuextOp::on_mfn(ext::NEW_BASEPTR, root)];
    // SAFETY: the current root again: the address space does not change.
    let ok = unsafe { mmu::mmuext_op(&op) }.is_ok();
    ok && mm::root() == root
}

/// Flushes this vCPU's whole TLB (PV: `MMUEXT_TLB_FLUSH_LOCAL`; PVH: a
/// CR3 reload).
pub fn flush_tlb() {
    crate::smp::flush_tlb_local(None);
}

/// Frames per chunk of a [`WalkSet`] (2 MiB).
const CHUNK: u64 = 512;
/// The walk's stride through the set, in pages: a prime larger than any
/// set, so it is coprime with the set's size and `i * STRIDE mod n`
/// visits every page once, scattered.
const STRIDE: u64 = 1_000_003;

/// A PVH 2 MiB page split for the walk: which, its old entry, the table.
struct Split {
    pfn: Pfn,
    old: u64,
    table: Frames,
}

/// Frames the walk reads, one word per page; see the module's comment.
pub struct WalkSet {
    chunks: Vec<Frames>,
    /// Each chunk's first page's address (the walk's loop reads these,
    /// not the direct map's bookkeeping, so each step is a few instructions).
    bases: Vec<u64>,
    split: Vec<Split>,
}

impl WalkSet {
    /// Takes up to `pages` frames (rounded down to 2 MiB chunks) and
    /// stamps each page `k` with `k`; `None` if not one chunk is free.
    /// Under PVH only chunks the direct map still maps with 2 MiB pages
    /// are kept (the first 2 MiB and the boot stack's are split already),
    /// so the set can be walked first as 2 MiB pages, then as 4 KiB ones.
    pub fn new(pages: u64) -> Option<WalkSet> {
        let mut chunks = Vec::new();
        let mut aside = Vec::new();
        while (chunks.len() as u64 + 1) * CHUNK <= pages && aside.len() < 8 {
            match mm::alloc_frames(CHUNK) {
                Some(f) if Self::in_large_pages_now(&f) => chunks.push(f),
                Some(f) => aside.push(f),
                None => break,
            }
        }
        for f in aside {
            mm::free_frames_run(f);
        }
        if chunks.is_empty() {
            return None;
        }
        let map = mm::direct_map();
        let bases = chunks.iter().map(|c| map.virt(c.start()).0).collect();
        let set = WalkSet { chunks, bases, split: Vec::new() };
        for k in 0..set.pages() {
            // SAFETY: page `k` is a frame of `set.chunks`, ours alone and
            // mapped writable in the direct map.
            unsafe { (set.word(k) as *mut u64).write_volatile(k) };
        }
        Some(set)
    }

    /// Whether the direct map maps all of `f` with 2 MiB pages (PV: true,
    /// there is nothing to tell apart).
    fn in_large_pages_now(f: &Frames) -> bool {
        let r = f.range();
        !crate::is_pvh()
            || (crate::pvh::memory::is_large(r.start)
                && crate::pvh::memory::is_large(Pfn(r.end.0 - 1)))
    }

    /// Pages in the set.
    pub fn pages(&self) -> u64 {
        self.chunks.len() as u64 * CHUNK
    }

    /// The address of page `k`'s word: a different cache line of each
    /// page (k mod 64), so the walk is not one cache set's conflicts.
    fn word(&self, k: u64) -> u64 {
        self.bases[(k / CHUNK) as usize] + (k % CHUNK) * PAGE + (k % 64) * 64
    }

    /// Steps `from .. from + steps` of a pass (step `i` reads page
    /// `i * STRIDE mod n`: a pass of `n` steps reads every page once, in a
    /// scattered order); returns the sum of the words read (a whole pass
    /// sums to [`expected_sum`](Self::expected_sum)). Timing a pass in
    /// pieces keeps each sample short, so that the host descheduling QEMU
    /// (which a pass of thousands of pages is long enough to suffer) spoils
    /// a few samples instead of every pass.
    pub fn walk(&self, from: u64, steps: u64) -> u64 {
        let n = self.pages();
        let step = STRIDE % n;
        let mut k = ((u128::from(from) * u128::from(step)) % u128::from(n)) as u64;
        let mut sum = 0u64;
        for _ in 0..steps {
            // SAFETY: every page of the set is ours and mapped (by the
            // direct map, or by the split tables that map the same frames).
            sum = sum.wrapping_add(unsafe { (self.word(k) as *const u64).read_volatile() });
            k += step;
            if k >= n {
                k -= n;
            }
        }
        sum
    }

    /// What the steps of a whole pass sum to: every page read once.
    pub fn expected_sum(&self) -> u64 {
        let n = self.pages();
        n * (n - 1) / 2
    }

    /// Pages of the set mapped by 2 MiB entries (PVH's direct map; PV
    /// maps 4 KiB pages only).
    pub fn in_large_pages(&self) -> u64 {
        if !crate::is_pvh() {
            return 0;
        }
        (0..self.pages()).filter(|&k| crate::pvh::memory::is_large(self.pfn(k))).count() as u64
    }

    fn pfn(&self, k: u64) -> Pfn {
        self.chunks[(k / CHUNK) as usize].pfn(k % CHUNK)
    }

    /// PVH: maps the set with 4 KiB pages (splits each 2 MiB page of the
    /// direct map it lies in: same frames, same rights, one page-table
    /// frame each). PV: nothing to do. How many 2 MiB pages it split, or
    /// `None` when no frame was free for a table.
    pub fn small_pages(&mut self) -> Option<usize> {
        if !crate::is_pvh() {
            return Some(0);
        }
        let before = self.split.len();
        for c in 0..self.chunks.len() {
            let r = self.chunks[c].range();
            for pfn in [r.start, Pfn(r.end.0 - 1)] {
                if !crate::pvh::memory::is_large(pfn) {
                    continue;
                }
                let table = mm::alloc_frames(1)?;
                // SAFETY: `table` was just taken from the allocator (ours
                // alone, identity-mapped below 4 GiB) and is kept in
                // `self.split` until `merge` gives it back.
                match unsafe { crate::pvh::memory::split_large(pfn, table.start()) } {
                    Some(old) => self.split.push(Split { pfn, old, table }),
                    None => mm::free_frames_run(table),
                }
            }
        }
        Some(self.split.len() - before)
    }

    /// Undoes [`small_pages`](Self::small_pages).
    fn merge(&mut self) {
        // Another vCPU may hold a split table in its paging-structure
        // caches: free the tables only when none has been started.
        let alone = (1..crate::smp::MAX_VCPUS as u32).all(|n| crate::smp::stack_range(n).is_none());
        for s in self.split.drain(..) {
            // SAFETY: `old` is what split_large returned for this page,
            // which is still split by that call (nothing else splits the
            // direct map's 2 MiB pages).
            unsafe { crate::pvh::memory::merge_large(s.pfn, s.old) };
            if alone {
                mm::free_frames_run(s.table);
            } else {
                let _kept = s.table.keep();
            }
        }
    }
}

impl Drop for WalkSet {
    fn drop(&mut self) {
        self.merge();
        for f in self.chunks.drain(..) {
            mm::free_frames_run(f);
        }
    }
}
