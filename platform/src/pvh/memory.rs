//! Start-of-day memory of a PVH guest: native page tables, no P2M to ask
//! Xen about. Guest frame numbers *are* the guest's physical frames (Xen's
//! nested or shadow paging translates them), so the direct map is the
//! identity map `entry32` built (virtual = physical, 2 MiB pages, 4 GiB),
//! with two of its 2 MiB pages split into 4 KiB pages: the one holding page
//! 0 (left unmapped, so null dereferences fault) and the one holding the
//! boot stack's lowest page (the guard page, unmapped).
//!
//! The rest of the kernel keeps speaking in pfns and "machine" frames: the
//! P2M here is a table the guest keeps itself (`pfn -> pfn` for RAM,
//! `INVALID_P2M_ENTRY` for holes and ballooned pages) so that the balloon
//! and the selftest see the same contract in both modes.

use super::entry32::BOOT_PD_ENTRIES;
use super::fatal;
use crate::memory::layout::{DirectMap, VirtAddr};
use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};
use hypercall::abi::hvm::{memmap_type, HvmMemmapTableEntry, HvmModlistEntry, HvmStartInfo};
use hypercall::abi::memory::INVALID_P2M_ENTRY;
use hypercall::{Mfn, Pfn, PAGE_SIZE};
use x86_64::structures::paging::{PageTable, PageTableFlags};

const PAGE: u64 = PAGE_SIZE as u64;
/// The boot map covers the first 4 GiB.
const MAPPED_LIMIT: u64 = 1 << 32;

extern "C" {
    static pvh_boot_pd: [AtomicU64; BOOT_PD_ENTRIES];
    static __image_start: u8;
    static __image_end: u8;
    static __boot_stack_bottom: u8;
}

// Two 4 KiB-page tables replacing the 2 MiB pages of page 0 and of the
// stack guard.
core::arch::global_asm!(
    ".pushsection .bss.pvh_split_tables, \"aw\", @nobits",
    ".balign 4096",
    ".globl pvh_split_null",
    "pvh_split_null:",
    ".skip 4096",
    ".globl pvh_split_guard",
    "pvh_split_guard:",
    ".skip 4096",
    ".popsection",
);

extern "C" {
    static mut pvh_split_null: PageTable;
    static mut pvh_split_guard: PageTable;
}

/// What [`init`] found.
pub struct Layout {
    pub map: DirectMap,
    /// First frame past the image, Xen's start-of-day structures and the P2M.
    pub first_free: Pfn,
    /// RAM the frame allocator may hand out.
    pub free: heapless_runs::Runs,
    pub guard_page: VirtAddr,
    pub root: Mfn,
}

/// A small fixed list of frame runs (no heap exists yet).
pub mod heapless_runs {
    use core::ops::Range;
    use hypercall::Pfn;

    pub const MAX: usize = 32;

    pub struct Runs {
        runs: [Range<Pfn>; MAX],
        len: usize,
    }

    impl Default for Runs {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Runs {
        pub fn new() -> Self {
            Runs { runs: core::array::from_fn(|_| Pfn(0)..Pfn(0)), len: 0 }
        }

        /// Adds a run; empty runs are skipped, and a full list drops the run
        /// (false), which only loses free memory.
        pub fn push(&mut self, r: Range<Pfn>) -> bool {
            if r.start >= r.end {
                return true;
            }
            if self.len == MAX {
                return false;
            }
            self.runs[self.len] = r;
            self.len += 1;
            true
        }

        pub fn iter(&self) -> impl Iterator<Item = Range<Pfn>> + '_ {
            self.runs[..self.len].iter().cloned()
        }
    }
}

/// `len` values of `T` at physical address `paddr`, which Xen wrote before
/// entry and nobody writes again.
fn phys_slice<T>(paddr: u64, len: usize) -> &'static [T] {
    let bytes = (len * core::mem::size_of::<T>()) as u64;
    if len == 0 {
        return &[];
    }
    if paddr == 0
        || !paddr.is_multiple_of(core::mem::align_of::<T>() as u64)
        || paddr.checked_add(bytes).is_none_or(|end| end > MAPPED_LIMIT)
    {
        fatal("a start-of-day table lies outside the boot map");
    }
    // SAFETY: the range is aligned and inside the 4 GiB identity map; the
    // domain builder filled it before the guest ran and it is only read.
    unsafe { core::slice::from_raw_parts(paddr as *const T, len) }
}

/// The memory map Xen passed (version 1 of `hvm_start_info`).
pub fn memmap(si: &HvmStartInfo) -> &'static [HvmMemmapTableEntry] {
    if si.version < 1 {
        return &[];
    }
    phys_slice(si.memmap_paddr, si.memmap_entries as usize)
}

/// The modules Xen passed.
pub fn modules(si: &HvmStartInfo) -> &'static [HvmModlistEntry] {
    phys_slice(si.modlist_paddr, si.nr_modules as usize)
}

/// RAM runs of the memory map below 4 GiB, as whole frames.
fn ram(map: &[HvmMemmapTableEntry]) -> impl Iterator<Item = Range<Pfn>> + '_ {
    map.iter().filter(|e| e.type_ == memmap_type::RAM).filter_map(|e| {
        let start = e.addr.div_ceil(PAGE);
        let end = (e.addr.saturating_add(e.size)).min(MAPPED_LIMIT) / PAGE;
        (start < end).then_some(Pfn(start)..Pfn(end))
    })
}

fn clip(r: Range<Pfn>, lo: Pfn, hi: Pfn) -> Range<Pfn> {
    r.start.max(lo)..r.end.min(hi)
}

/// The end of RAM below 4 GiB, in pages: the domain's `nr_pages`.
pub fn ram_end(si: &HvmStartInfo) -> u64 {
    ram(memmap(si)).map(|r| r.end.0).max().unwrap_or(0)
}

/// Replaces the 2 MiB page holding `va` by 512 4 KiB pages from `table`,
/// all mapped but `va`'s own page. Runs before anything lives in that page.
fn split_and_unmap(table: &mut PageTable, va: u64) {
    let pd_index = (va >> 21) as usize;
    let base = (pd_index as u64) << 21;
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
    for (i, e) in table.iter_mut().enumerate() {
        let addr = base + i as u64 * PAGE;
        if addr == va & !(PAGE - 1) {
            e.set_unused();
        } else {
            e.set_addr(x86_64::PhysAddr::new(addr), flags);
        }
    }
    let table_pa = table as *const PageTable as u64;
    // SAFETY: the boot page directory entry maps the same 2 MiB (minus one
    // page nothing refers to: page 0, or the stack's guard page below the
    // stack in use) through the new table, which is identity-mapped .bss.
    unsafe { pvh_boot_pd[pd_index].store(table_pa | flags.bits(), Ordering::SeqCst) };
    x86_64::instructions::tlb::flush_all();
}

/// Finds RAM, reserves what Xen placed after the image, builds the P2M
/// and splits off the null and guard pages.
pub fn init(si: &HvmStartInfo, si_paddr: u64, cmdline_len: u64) -> (Layout, &'static [AtomicU64]) {
    let map = memmap(si);
    let nr_pages = ram(map).map(|r| r.end.0).max().unwrap_or(0);
    let image_start = core::ptr::addr_of!(__image_start) as u64 / PAGE;
    let image_end = (core::ptr::addr_of!(__image_end) as u64).div_ceil(PAGE);
    if nr_pages <= image_end {
        fatal("no RAM past the image in the memory map");
    }

    // Everything the builder put after the image is reserved.
    let mut end = image_end * PAGE;
    let mut reserve = |paddr: u64, bytes: u64| {
        if paddr != 0 && paddr < nr_pages * PAGE {
            end = end.max(paddr.saturating_add(bytes));
        }
    };
    reserve(si_paddr, core::mem::size_of::<HvmStartInfo>() as u64);
    reserve(si.memmap_paddr, u64::from(si.memmap_entries) * 24);
    reserve(si.cmdline_paddr, cmdline_len + 1);
    reserve(si.modlist_paddr, u64::from(si.nr_modules) * 32);
    for m in modules(si) {
        reserve(m.paddr, m.size);
        reserve(m.cmdline_paddr, 1024);
    }
    let p2m_start = end.div_ceil(PAGE);
    let p2m_pages = (nr_pages * 8).div_ceil(PAGE);
    let first_free = Pfn(p2m_start + p2m_pages);
    if first_free.0 >= nr_pages {
        fatal("no room for the P2M table");
    }

    // SAFETY: [p2m_start, first_free) is RAM past everything Xen placed
    // (checked above), inside the identity map, and referenced by nothing;
    // it becomes the P2M for the guest's life. Zeroed atomics are valid.
    let p2m: &'static [AtomicU64] = unsafe {
        let p = (p2m_start * PAGE) as *mut AtomicU64;
        core::ptr::write_bytes(p, 0, (p2m_pages * PAGE) as usize / 8);
        core::slice::from_raw_parts(p, nr_pages as usize)
    };
    for e in p2m {
        e.store(INVALID_P2M_ENTRY, Ordering::Relaxed);
    }
    for r in ram(map) {
        for pfn in r.start.0..r.end.0.min(nr_pages) {
            p2m[pfn as usize].store(pfn, Ordering::Relaxed);
        }
    }

    let mut free = heapless_runs::Runs::new();
    for r in ram(map) {
        // Below the image (page 0 stays out: it is the null page; page 1
        // is the scratch page, page 2 the demand-fault page), and past
        // the P2M.
        free.push(clip(r.clone(), Pfn(FAULT_VA / PAGE + 1), Pfn(image_start)));
        free.push(clip(r, first_free, Pfn(nr_pages)));
    }

    let guard = core::ptr::addr_of!(__boot_stack_bottom) as u64;
    if guard >> 21 == 0 {
        fatal("the boot stack lies in the first 2 MiB");
    }
    // SAFETY: the two tables are .bss pages reserved for this, used once,
    // before anything else refers to them.
    unsafe {
        split_and_unmap(&mut *core::ptr::addr_of_mut!(pvh_split_null), 0);
        split_and_unmap(&mut *core::ptr::addr_of_mut!(pvh_split_guard), guard);
    }
    let (root, _) = x86_64::registers::control::Cr3::read();
    let layout = Layout {
        map: DirectMap { base: VirtAddr(0), nr_pages },
        first_free,
        free,
        guard_page: VirtAddr(guard),
        root: Mfn(root.start_address().as_u64() / PAGE),
    };
    (layout, p2m)
}

/// The leaf mapping of `va` in the live page tables, as a 4 KiB entry: a
/// 2 MiB page's entry is given for the 4 KiB page inside it (frame and
/// flags, without the page-size bit). `None` when unmapped.
pub fn lookup(va: u64) -> Option<crate::memory::pagetable::Pte> {
    const PS: u64 = 1 << 7;
    const ADDR: u64 = 0x000F_FFFF_FFFF_F000;
    if !(0..1u64 << 47).contains(&va) {
        return None;
    }
    let (root, _) = x86_64::registers::control::Cr3::read();
    let mut table = root.start_address().as_u64();
    for level in (1..=4u32).rev() {
        let index = ((va >> (12 + 9 * (level - 1))) & 511) as usize;
        if table >= MAPPED_LIMIT {
            return None;
        }
        // SAFETY: every page table of this guest is a frame below 4 GiB
        // (image .bss), identity-mapped; the entry is an aligned u64 in it,
        // read atomically (the CPU sets accessed/dirty bits concurrently).
        let raw =
            unsafe { (*((table + index as u64 * 8) as *const AtomicU64)).load(Ordering::Relaxed) };
        if raw & 1 == 0 {
            return None;
        }
        if level == 1 {
            return Some(crate::memory::pagetable::Pte(raw));
        }
        if level == 2 && raw & PS != 0 {
            let offset = va & ((1 << 21) - 1) & !(PAGE - 1);
            return Some(crate::memory::pagetable::Pte(
                ((raw & ADDR & !((1 << 21) - 1)) + offset) | (raw & !ADDR & !PS),
            ));
        }
        table = raw & ADDR;
    }
    None
}

/// Unmaps the 4 KiB page at `va` (below 4 GiB) of the identity map (a
/// secondary vCPU's stack guard). Its 2 MiB page is first split into 512
/// 4 KiB pages, all mapped as before, through the page at `spare`, unless
/// an earlier call split it already. Returns whether `spare` became a page
/// table (it then stays one for good). Flushes `va` on this vCPU only:
/// another vCPU's cached 2 MiB translation maps the same frames, and the
/// vCPU whose stack this guards has not run yet.
///
/// # Safety
/// Nothing may refer to the page at `va`; `spare` must be an identity-mapped
/// page below 4 GiB that nothing else refers to, kept for good.
pub unsafe fn unmap_4k(va: u64, spare: u64) -> Result<bool, &'static str> {
    const PS: u64 = 1 << 7;
    const ADDR: u64 = 0x000F_FFFF_FFFF_F000;
    if va >= MAPPED_LIMIT || spare >= MAPPED_LIMIT || va >> 21 == 0 {
        return Err("outside the split-able identity map");
    }
    let pd_index = (va >> 21) as usize;
    // SAFETY: the boot page directory is ours and covers the first 4 GiB;
    // vCPU 0 is the only writer (SMP bring-up runs there).
    let pde = unsafe { &pvh_boot_pd[pd_index] };
    let raw = pde.load(Ordering::SeqCst);
    if raw & 1 == 0 {
        return Err("the 2 MiB page is not mapped");
    }
    let mut used = false;
    let table = if raw & PS != 0 {
        // SAFETY: the caller gives `spare` to us: an identity-mapped page
        // nothing refers to, which becomes this 2 MiB page's table.
        let t = unsafe { &mut *(spare as *mut PageTable) };
        let base = (pd_index as u64) << 21;
        let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
        for (i, e) in t.iter_mut().enumerate() {
            e.set_addr(x86_64::PhysAddr::new(base + i as u64 * PAGE), flags);
        }
        // The same frames as the 2 MiB entry maps, 4 KiB at a time.
        pde.store(spare | flags.bits(), Ordering::SeqCst);
        used = true;
        spare
    } else {
        raw & ADDR
    };
    let index = ((va >> 12) & 511) as usize;
    // SAFETY: `table` is this 2 MiB page's 4 KiB table (split above or by
    // an earlier call), identity-mapped below 4 GiB; the entry maps only
    // `va`, which the caller vouches nothing refers to.
    unsafe { (&mut *(table as *mut PageTable))[index].set_unused() };
    x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(va));
    Ok(used)
}

/// The scratch page: virtual page 1, in the split first 2 MiB, kept out of
/// the frame allocator so that remapping it aliases nothing in use.
pub const SCRATCH_VA: u64 = PAGE;

/// Maps the scratch page to `frame` (or back to its own frame with
/// `None`) by writing the native PTE and `invlpg`: a PVH page-table
/// update, no hypercall.
///
/// # Safety
/// Nothing may hold a reference into the scratch page, and `frame` must be
/// RAM of ours whose other users tolerate the alias.
pub unsafe fn map_scratch(frame: Option<Pfn>) {
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
    let addr = frame.map_or(SCRATCH_VA, |f| f.0 * PAGE);
    // SAFETY: the split table of the first 2 MiB is ours (.bss); entry 1
    // maps only the scratch page, which the caller vouches for.
    unsafe {
        (&mut *core::ptr::addr_of_mut!(pvh_split_null))[1]
            .set_addr(x86_64::PhysAddr::new(addr), flags);
    }
    x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(SCRATCH_VA));
}

/// The demand-fault page: virtual page 2, in the split first 2 MiB,
/// mapped to its own frame (identity) and kept out of the frame allocator,
/// so that unmapping it takes nothing from anyone. The paging benchmark
/// unmaps it, touches it, and its fault handler maps it again
/// (`crate::paging_bench`).
pub const FAULT_VA: u64 = 2 * PAGE;

/// Maps the fault page to its own frame (`present`) or unmaps it (with
/// `invlpg`, so the next touch faults). Mapping needs no flush: a
/// not-present entry is never cached.
///
/// # Safety
/// Unmapping: nothing may hold a reference into the fault page (its users
/// read it through raw pointers, see `paging_bench`).
pub unsafe fn set_fault_page(present: bool) {
    let index = (FAULT_VA / PAGE) as usize;
    // SAFETY: the split table of the first 2 MiB is ours (.bss); entry 2
    // maps only the fault page, whose frame nobody else owns (kept out of
    // the allocator above), and the caller vouches that nothing refers to
    // it while it is unmapped.
    unsafe {
        let e = &mut (&mut *core::ptr::addr_of_mut!(pvh_split_null))[index];
        if present {
            e.set_addr(
                x86_64::PhysAddr::new(FAULT_VA),
                PageTableFlags::PRESENT | PageTableFlags::WRITABLE,
            );
        } else {
            e.set_unused();
            x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(FAULT_VA));
        }
    }
}

/// The boot map's entry for the 2 MiB page holding `pfn`, if that is
/// still a 2 MiB page (not split, inside the 4 GiB boot map).
fn boot_pd_entry(pfn: Pfn) -> Option<&'static AtomicU64> {
    const PS: u64 = 1 << 7;
    let index = ((pfn.0 * PAGE) >> 21) as usize;
    // SAFETY: `pvh_boot_pd` is the boot map's page directories (.bss),
    // live for the guest's life; entries are read and written atomically.
    let pd = unsafe { &*core::ptr::addr_of!(pvh_boot_pd) };
    let e = pd.get(index)?;
    let raw = e.load(Ordering::Relaxed);
    (raw & 1 != 0 && raw & PS != 0).then_some(e)
}

/// Whether the 2 MiB page holding `pfn` is mapped by a 2 MiB entry.
pub fn is_large(pfn: Pfn) -> bool {
    boot_pd_entry(pfn).is_some()
}

/// Replaces the 2 MiB page of the boot map holding `pfn` by 512 4 KiB
/// pages mapping the same frames with the same rights, through the page
/// table frame `table` (filled here). Returns the 2 MiB entry it replaced
/// (for [`merge_large`]), or `None` when that page is not a 2 MiB page
/// (already split, or outside the boot map): then `table` is untouched.
/// Flushes this vCPU's TLB.
///
/// # Safety
/// `table` must be a frame of ours that nothing else uses, identity-mapped
/// (RAM below 4 GiB), until [`merge_large`] gives it back. Other vCPUs may
/// keep the 2 MiB translation cached: it maps the same frames.
pub unsafe fn split_large(pfn: Pfn, table: Pfn) -> Option<u64> {
    const PS: u64 = 1 << 7;
    const PAT_LARGE: u64 = 1 << 12;
    let e = boot_pd_entry(pfn)?;
    let old = e.load(Ordering::Relaxed);
    let base = old & 0x000F_FFFF_FFE0_0000;
    // The 4 KiB entries keep every flag but the page size (and the large
    // page's PAT bit, which the boot map never sets).
    let flags = old & 0xFFF & !PS;
    let t = (table.0 * PAGE) as *mut u64;
    for i in 0..512u64 {
        // SAFETY: `table` is an identity-mapped frame the caller gave us.
        unsafe { t.add(i as usize).write_volatile((base + i * PAGE) | flags | (old & (1 << 63))) };
    }
    debug_assert_eq!(old & PAT_LARGE, 0);
    // The directory entry points at the table with the same rights.
    e.store((table.0 * PAGE) | flags | (old & (1 << 63)), Ordering::SeqCst);
    x86_64::instructions::tlb::flush_all();
    Some(old)
}

/// Puts back the 2 MiB entry [`split_large`] replaced for `pfn` (`old`)
/// and flushes this vCPU's TLB. The table frame is unreferenced after it.
///
/// # Safety
/// `old` must be what [`split_large`] returned for this 2 MiB page, and it
/// must still be split by that call; another vCPU that walked through the
/// table may hold it in its paging-structure caches until it flushes, so
/// the caller must be the only vCPU running, or keep the table frame.
pub unsafe fn merge_large(pfn: Pfn, old: u64) {
    let index = ((pfn.0 * PAGE) >> 21) as usize;
    // SAFETY: as for `boot_pd_entry`; the caller vouches for `old`.
    let pd = unsafe { &*core::ptr::addr_of!(pvh_boot_pd) };
    if let Some(e) = pd.get(index) {
        e.store(old, Ordering::SeqCst);
    }
    x86_64::instructions::tlb::flush_all();
}
