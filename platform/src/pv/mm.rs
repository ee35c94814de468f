//! The unsafe half of memory management: the real [`Mmu`] (hypercalls and
//! reads of live page tables), start-of-day mapping of all memory, the
//! boot-stack guard page, the global allocator and the balloon. The logic
//! lives in `crate::memory` and is unit-tested against a fake MMU.
//!
//! Soundness rests on one rule: the only mappings this module removes or
//! makes read-only are of frames nothing in Rust refers to: page-table
//! frames fresh from the frame allocator, the guard page (the bottom page
//! of the boot stack, which the stack never reaches while it is in bounds)
//! and balloon frames taken from the frame allocator.

use crate::hooks::emergency_print;
use crate::memory::balloon::{self, Holes, Reservation};
use crate::memory::frames::{FrameAllocator, Frames};
use crate::memory::layout::{BootInfo, BootLayout, DirectMap, VirtAddr};
use crate::memory::pagetable::{
    self, AddressSpace, Level, MapStats, Mmu, MmuError, Pte, DATA_FLAGS,
};
use core::alloc::Layout;
use core::ops::Range;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use hypercall::abi::memory::INVALID_P2M_ENTRY;
use hypercall::abi::mmu::{ext, MmuUpdate, MmuextOp, MulticallEntry};
use hypercall::abi::start_info::{sif, StartInfo};
use hypercall::ops::{memory, mmu, multicall};
use hypercall::{DomId, FrameRange, MachineAddr, Mfn, Pfn, XenError, PAGE_SIZE};
use spin::{Mutex, Once};

extern "C" {
    static __boot_stack_bottom: u8;
}

/// Requests per `mmu_update` (32 KiB of requests in .bss).
const BATCH: usize = 2048;

static BATCH_BUF: Mutex<[MmuUpdate; BATCH]> = Mutex::new([MmuUpdate::pt(MachineAddr(0), 0); BATCH]);
static FRAMES: Mutex<FrameAllocator> = Mutex::new(FrameAllocator::new());
/// The vCPU holding [`FRAMES`] (`u32::MAX`: nobody), so the heap's frame
/// source can tell a re-entry (give up at once) from another vCPU holding
/// it a while (wait: Xen may have preempted that vCPU).
static FRAMES_HOLDER: AtomicU32 = AtomicU32::new(u32::MAX);

/// [`FRAMES`] held, with its holder recorded.
struct FramesGuard(spin::MutexGuard<'static, FrameAllocator>);

impl FramesGuard {
    fn new(g: spin::MutexGuard<'static, FrameAllocator>) -> Self {
        FRAMES_HOLDER.store(crate::smp::current(), Ordering::Release);
        FramesGuard(g)
    }
}

impl Drop for FramesGuard {
    fn drop(&mut self) {
        FRAMES_HOLDER.store(u32::MAX, Ordering::Release);
    }
}

impl core::ops::Deref for FramesGuard {
    type Target = FrameAllocator;
    fn deref(&self) -> &FrameAllocator {
        &self.0
    }
}

impl core::ops::DerefMut for FramesGuard {
    fn deref_mut(&mut self) -> &mut FrameAllocator {
        &mut self.0
    }
}

/// The frame allocator, waiting for it.
fn lock_frames() -> FramesGuard {
    FramesGuard::new(FRAMES.lock())
}

/// The frame allocator if nobody holds it now.
fn try_lock_frames() -> Option<FramesGuard> {
    FRAMES.try_lock().map(FramesGuard::new)
}
static HYPERCALLS: AtomicU64 = AtomicU64::new(0);
/// Pfns below this are mapped in the direct map (page tables are read
/// through it only below this line).
static MAPPED_END: AtomicU64 = AtomicU64::new(0);
static HEAP_BYTES: AtomicU64 = AtomicU64::new(0);
static INFO: Once<MemoryInfo> = Once::new();

/// What start of day found and did, for the boot log and the selftest.
#[derive(Clone, Copy, Debug)]
pub struct MemoryInfo {
    pub layout: BootLayout,
    /// Where Xen's bootstrap mapping ended.
    pub boot_mapped_end: Pfn,
    pub stats: MapStats,
    /// Time and hypercalls extending the direct map to all pages.
    pub map_ns: u64,
    pub map_hypercalls: u64,
    pub guard_page: VirtAddr,
}

pub(crate) fn count() {
    HYPERCALLS.fetch_add(1, Ordering::Relaxed);
}

/// Page-table hypercalls made so far.
pub fn hypercalls() -> u64 {
    HYPERCALLS.load(Ordering::Relaxed)
}

fn mmu_err(op: &'static str, e: mmu::BatchError) -> MmuError {
    MmuError { op, error: e.error, done: e.done }
}

/// The real MMU. Private: only this module drives it, and keeps to the
/// rule in the module comment.
struct GuestMmu;

impl Mmu for GuestMmu {
    fn pfn_to_mfn(&self, pfn: Pfn) -> Option<Mfn> {
        super::pfn_to_mfn(pfn).filter(|m| m.0 != INVALID_P2M_ENTRY)
    }

    fn read_entry(&self, table: Mfn, index: usize) -> Pte {
        let pfn = super::mfn_to_pfn(table).expect("page-table frame in the M2P");
        assert!(
            pfn.0 < MAPPED_END.load(Ordering::Relaxed) && index < pagetable::ENTRIES,
            "page table {table:?} (pfn {pfn:?}) is outside the direct map"
        );
        let entry = (super::pfn_to_virt(pfn) + index * 8) as *const AtomicU64;
        // SAFETY: the table's pfn is below MAPPED_END, so the direct map
        // maps it (read-only); the entry is an aligned u64 inside it. Xen may
        // set A/D bits concurrently, hence an atomic load.
        Pte(unsafe { (*entry).load(Ordering::Relaxed) })
    }

    fn update(&mut self, batch: &[MmuUpdate]) -> Result<(), MmuError> {
        count();
        // SAFETY: this module only builds requests that add mappings, map
        // table frames read-only, or unmap frames nothing refers to.
        unsafe { mmu::mmu_update(batch) }.map_err(|e| mmu_err("mmu_update", e))
    }

    fn update_and_flush(&mut self, batch: &[MmuUpdate]) -> Result<(), MmuError> {
        // Every vCPU's TLB once another may have cached the old entries.
        let flush = [MmuextOp::plain(crate::smp::tlb_flush_scope())];
        let mut calls = [multicall::mmu_update(batch), multicall::mmuext_op(&flush)];
        count();
        // SAFETY: both arrays outlive the call; the requests keep to the
        // module rule and a flush changes no mapping.
        unsafe { multicall::multicall(&mut calls) }.map_err(|error| MmuError {
            op: "multicall",
            error,
            done: 0,
        })?;
        match multicall::first_failure(&calls) {
            None => Ok(()),
            Some((i, error)) => Err(MmuError {
                op: if i == 0 { "mmu_update" } else { "mmuext_op" },
                error,
                done: 0,
            }),
        }
    }

    fn remap(&mut self, maps: &[(VirtAddr, Pte)]) -> Result<(), MmuError> {
        let mut calls = [MulticallEntry::default(); 32];
        for chunk in maps.chunks(calls.len()) {
            for (c, &(va, pte)) in calls.iter_mut().zip(chunk) {
                *c = multicall::update_va_mapping(va.0 as usize, pte.0, crate::smp::invlpg_scope());
            }
            count();
            // SAFETY: each entry is an update_va_mapping of a page that the
            // module rule allows to change; no pointers are passed.
            unsafe { multicall::multicall(&mut calls[..chunk.len()]) }
                .map_err(|error| MmuError { op: "multicall", error, done: 0 })?;
            if let Some((done, error)) = multicall::first_failure(&calls[..chunk.len()]) {
                return Err(MmuError { op: "update_va_mapping", error, done });
            }
        }
        Ok(())
    }

    fn pin(&mut self, level: Level, table: Mfn) -> Result<(), MmuError> {
        let cmd = match level {
            Level::L1 => ext::PIN_L1_TABLE,
            Level::L2 => ext::PIN_L2_TABLE,
            Level::L3 => ext::PIN_L3_TABLE,
            Level::L4 => ext::PIN_L4_TABLE,
        };
        count();
        // SAFETY: pinning only makes Xen validate and keep a table type; a
        // frame that fails validation is refused, not changed.
        unsafe { mmu::mmuext_op(&[MmuextOp::on_mfn(cmd, table)]) }.map_err(|e| mmu_err("pin", e))
    }

    fn unpin(&mut self, table: Mfn) -> Result<(), MmuError> {
        count();
        // SAFETY: unpinning drops Xen's extra type reference; no mapping
        // changes.
        unsafe { mmu::mmuext_op(&[MmuextOp::on_mfn(ext::UNPIN_TABLE, table)]) }
            .map_err(|e| mmu_err("unpin", e))
    }

    fn flush_tlb(&mut self) -> Result<(), MmuError> {
        count();
        let r = match crate::smp::tlb_flush_scope() {
            ext::TLB_FLUSH_LOCAL => mmu::tlb_flush_local(),
            _ => mmu::tlb_flush_all(),
        };
        r.map_err(|error| MmuError { op: "tlb_flush", error, done: 0 })
    }
}

impl Reservation for GuestMmu {
    fn decrease(&mut self, mfns: &[Mfn]) -> Result<usize, MmuError> {
        count();
        // SAFETY: balloon::give_back passes frames it has just unmapped,
        // taken from the frame allocator: nothing refers to them.
        unsafe { memory::decrease_reservation(mfns) }
            .map(|n| n as usize)
            .map_err(|error| MmuError { op: "decrease_reservation", error, done: 0 })
    }

    fn populate(&mut self, pfns: &[Pfn], out: &mut [Mfn]) -> Result<usize, MmuError> {
        count();
        // SAFETY: balloon::take_back passes pfns it ballooned out: holes.
        unsafe { memory::populate_physmap(pfns, out) }
            .map(|n| n as usize)
            .map_err(|error| MmuError { op: "populate_physmap", error, done: 0 })
    }

    fn set_p2m(&mut self, pfn: Pfn, mfn: Option<Mfn>) {
        super::p2m()[pfn.0 as usize]
            .store(mfn.map_or(INVALID_P2M_ENTRY, |m| m.0), Ordering::Relaxed);
    }
}

fn boot_info(si: &StartInfo) -> BootInfo {
    let (image_start, image_end) = super::image_range();
    let domu_page = |mfn: Mfn| {
        (!si.is_initial_domain())
            .then(|| super::mfn_to_pfn(mfn))
            .flatten()
            .filter(|p| p.0 < si.nr_pages)
    };
    let module = if si.mod_len == 0 {
        (VirtAddr(0), 0)
    } else if si.flags & sif::MOD_START_PFN != 0 {
        (VirtAddr(super::pfn_to_virt(Pfn(si.mod_start)) as u64), si.mod_len)
    } else {
        (VirtAddr(si.mod_start), si.mod_len)
    };
    BootInfo {
        virt_base: VirtAddr(image_start as u64),
        nr_pages: si.nr_pages,
        image_end: VirtAddr(image_end as u64),
        module,
        mfn_list: VirtAddr(si.mfn_list),
        start_info: VirtAddr(super::start_info_page() as u64),
        store: domu_page(si.store().0),
        console: domu_page(si.console.domu().0),
        pt_base: VirtAddr(si.pt_base),
        nr_pt_frames: si.nr_pt_frames,
    }
}

fn fatal(what: core::fmt::Arguments<'_>) -> ! {
    emergency_print(format_args!("memory: {what}\n"));
    crate::shutdown(hypercall::abi::sched::ShutdownReason::Crash)
}

/// Start of day: finds what Xen mapped, maps every page in the direct map,
/// unmaps the guard page and hands free frames to the allocator. Returns
/// what it did, for the boot log.
pub(super) fn init(si: &StartInfo) -> &'static MemoryInfo {
    let info = boot_info(si);
    let layout = info.layout().unwrap_or_else(|e| fatal(format_args!("bad start of day: {e}")));
    let map = layout.map;
    let root =
        super::pfn_to_mfn(map.pfn(info.pt_base).unwrap_or(Pfn(u64::MAX))).unwrap_or_else(|| {
            fatal(format_args!("pt_base {} is not in the direct map", info.pt_base))
        });
    MAPPED_END.store(layout.first_free.0, Ordering::Relaxed);
    ROOT_PFN.store(map.pfn(info.pt_base).map_or(0, |p| p.0), Ordering::Relaxed);
    let mut mmu = GuestMmu;

    // What Xen mapped: at least up to the padding, up to a 4 MiB boundary.
    let boot_end_va = pagetable::mapped_until(&mmu, root, map.virt(layout.first_free), map.end());
    let boot_end = map.pfn(boot_end_va).unwrap_or(Pfn(map.nr_pages));
    if boot_end < layout.surely_mapped {
        fatal(format_args!("Xen mapped only up to pfn {boot_end}"));
    }
    MAPPED_END.store(boot_end.0, Ordering::Relaxed);

    let mut frames = lock_frames();
    if frames.add(layout.first_free..Pfn(map.nr_pages)).is_err() {
        fatal(format_args!("cannot seed the frame allocator"));
    }
    let space = AddressSpace { root, map };
    let todo = boot_end..Pfn(map.nr_pages);
    let plan = pagetable::plan(&mmu, &space, todo.clone());
    // Page tables for good: Xen holds them pinned for the guest's life.
    let tables = frames.alloc(plan.tables).map_or(Pfn(0)..Pfn(0), Frames::keep);
    if tables.frame_count() != plan.tables {
        fatal(format_args!("no {} frames for page tables", plan.tables));
    }
    drop(frames);
    let boot_tables = map.pfn(info.pt_base).unwrap_or(Pfn(0));
    let boot_tables = boot_tables.run(info.nr_pt_frames);

    let (t0, h0) = (crate::now_ns(), hypercalls());
    let stats = pagetable::map_range(
        &mut mmu,
        &space,
        todo,
        tables,
        boot_end,
        &[boot_tables],
        &mut *BATCH_BUF.lock(),
    )
    .unwrap_or_else(|e| fatal(format_args!("extending the direct map: {e}")));
    let (map_ns, map_hypercalls) = (crate::now_ns() - t0, hypercalls() - h0);
    MAPPED_END.store(map.nr_pages, Ordering::Relaxed);

    let guard_page = VirtAddr(core::ptr::addr_of!(__boot_stack_bottom) as u64);
    let mut old = [None];
    pagetable::unmap_pages(&mut mmu, root, guard_page, &mut old, &mut *BATCH_BUF.lock())
        .unwrap_or_else(|e| fatal(format_args!("unmapping the guard page: {e}")));

    install_p2m(si);
    MAPPED_END.fetch_max(super::p2m().len() as u64, Ordering::Relaxed);

    INFO.call_once(|| MemoryInfo {
        layout,
        boot_mapped_end: boot_end,
        stats,
        map_ns,
        map_hypercalls,
        guard_page,
    })
}

impl core::fmt::Display for MemoryInfo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let map = self.layout.map;
        if crate::pvh::active() {
            return write!(
                f,
                "{} MiB, {} pages (PVH: native page tables, identity map of 2 MiB pages, GFN = PFN); free from pfn {:#x}; {} MiB free",
                map.nr_pages >> 8,
                map.nr_pages,
                self.layout.first_free.0,
                lock_frames().free_frames() >> 8,
            );
        }
        write!(
            f,
            "{} MiB, {} pages; Xen mapped pfns below {:#x}; mapped the rest in {} us with {} hypercalls ({} entries, {} new tables, {} made read-only); {} MiB free; P2M for {} pfns published for the toolstack",
            map.nr_pages >> 8,
            map.nr_pages,
            self.boot_mapped_end.0,
            self.map_ns / 1000,
            self.map_hypercalls,
            self.stats.entries,
            self.stats.tables,
            self.stats.made_read_only,
            lock_frames().free_frames() >> 8,
            super::p2m().len(),
        )
    }
}

/// Replaces Xen's P2M list (boot size) with one sized for the maximum
/// reservation Xen reports now, and publishes it. `xl` raises that
/// reservation only as `xl mem-set` asks, so [`extend_p2m`] grows the list
/// again once XenStore says how far the domain may grow (`memory/static-max`).
fn install_p2m(si: &StartInfo) {
    let max = memory::maximum_reservation(DomId::SELF).unwrap_or_else(|e| {
        log::warn!("memory: maximum_reservation: {e}; the P2M stays at the boot size");
        si.nr_pages
    });
    if let Err(e) = extend_p2m(max.max(si.nr_pages)) {
        fatal(format_args!("{e}"));
    }
}

/// Makes the P2M cover `pfns` pfns (never shrinks it): a new list and
/// tree in frames from the allocator, entries copied, published; the
/// previous list's frames go back to the allocator (Xen's boot list lies
/// in the bootstrap region and stays). The list takes at most a sixteenth
/// of the boot memory: a larger `maxmem` can only be ballooned up to what
/// it covers (said once). Returns the pfns covered. PV only (PVH has no
/// P2M for the toolstack).
pub(crate) fn extend_p2m(pfns: u64) -> Result<u64, &'static str> {
    let boot = super::start_info().nr_pages;
    let cap = (boot / 16).max(4) * super::p2m::PER_PAGE as u64;
    let len = pfns.min(cap.max(boot));
    if len < pfns {
        log::warn!("memory: {pfns} pfns asked for; the P2M covers {len} (1/16 of memory)");
    }
    let have = super::p2m().len() as u64;
    if len <= have && super::p2m::tree().is_some() {
        return Ok(have);
    }
    let len = len.max(have);
    let (leaves, mids) = super::p2m::pages_for(len);
    let mut f = lock_frames();
    let (Some(leaves), Some(mids), Some(top)) = (f.alloc(leaves), f.alloc(mids), f.alloc(1)) else {
        return Err("no free frames for the P2M");
    };
    drop(f);
    // Kept for good (until a longer list replaces them: freed below).
    let tree = super::p2m::Tree { leaves: leaves.keep(), mids: mids.keep(), top: top.keep().start };
    // SAFETY: the runs were just taken from the allocator (ours, mapped
    // writable in the direct map, referenced nowhere); they stay the P2M's
    // until a longer list replaces them.
    let old = unsafe { super::p2m::install(tree, len as usize, crate::shared_info()) };
    if let Some(old) = old {
        let mut f = lock_frames();
        for run in [old.leaves, old.mids, old.top.run(1)] {
            if f.add(run).is_err() {
                log::warn!("memory: the old P2M's frames could not be freed");
            }
        }
    }
    MAPPED_END.fetch_max(len, Ordering::Relaxed);
    Ok(len)
}

/// The pfn of the top-level page table (its machine frame changes when
/// the domain is restored elsewhere; its pfn does not).
static ROOT_PFN: AtomicU64 = AtomicU64::new(0);

/// The machine frame of the top-level page table now (PVH: its guest
/// frame, which never changes).
pub fn root() -> Mfn {
    if crate::pvh::active() {
        return Mfn(ROOT_PFN.load(Ordering::Relaxed));
    }
    super::pfn_to_mfn(Pfn(ROOT_PFN.load(Ordering::Relaxed))).expect("the root table has a frame")
}

/// Start of day of a PVH guest: the page tables are native and already
/// map all RAM (`pvh::memory`), so this only seeds the frame allocator
/// with the RAM runs `free` and records the layout.
pub(crate) fn init_pvh(
    map: DirectMap,
    first_free: Pfn,
    free: impl Iterator<Item = Range<Pfn>>,
    root: Mfn,
    guard_page: VirtAddr,
) -> &'static MemoryInfo {
    MAPPED_END.store(map.nr_pages, Ordering::Relaxed);
    // GFN = PFN: the root table's frame is its pfn.
    ROOT_PFN.store(root.0, Ordering::Relaxed);
    let mut frames = lock_frames();
    for run in free {
        if frames.add(run).is_err() {
            fatal(format_args!("cannot seed the frame allocator"));
        }
    }
    drop(frames);
    INFO.call_once(|| MemoryInfo {
        layout: BootLayout { map, first_free, surely_mapped: Pfn(map.nr_pages) },
        boot_mapped_end: Pfn(map.nr_pages),
        stats: MapStats::default(),
        map_ns: 0,
        map_hypercalls: 0,
        guard_page,
    })
}

/// Start-of-day facts.
pub fn info() -> &'static MemoryInfo {
    INFO.get().expect("memory is initialised at entry")
}

/// The direct map of all pseudo-physical memory: every pfn the P2M
/// covers (pfns without a frame, ballooned out or never populated, are
/// holes: unmapped).
pub fn direct_map() -> DirectMap {
    if crate::pvh::active() {
        // The identity map of RAM; the balloon stays within it.
        return info().layout.map;
    }
    DirectMap { base: info().layout.map.base, nr_pages: super::p2m().len() as u64 }
}

/// The leaf entry mapping `va`, if mapped.
pub fn lookup(va: VirtAddr) -> Option<Pte> {
    if crate::pvh::active() {
        return crate::pvh::memory::lookup(va.0);
    }
    pagetable::lookup(&GuestMmu, root(), va)
}

/// The machine address of the leaf entry that maps `va`, and the entry.
pub fn leaf_entry(va: VirtAddr) -> Option<(MachineAddr, Pte)> {
    if crate::pvh::active() {
        // Native page tables: there is no machine address to hand Xen.
        return None;
    }
    let (table, index) = pagetable::leaf_slot(&GuestMmu, root(), va)?;
    Some((pagetable::entry_addr(table, index), lookup(va)?))
}

/// The first mapped page in `range`.
pub fn first_mapped(range: Range<VirtAddr>) -> Option<VirtAddr> {
    if crate::pvh::active() {
        let pages = (range.start.0 / PAGE_SIZE as u64)..range.end.0.div_ceil(PAGE_SIZE as u64);
        return pages
            .map(|p| VirtAddr(p * PAGE_SIZE as u64))
            .find(|&va| crate::pvh::memory::lookup(va.0).is_some());
    }
    pagetable::first_mapped(&GuestMmu, root(), range)
}

/// Free frames and the longest run of them.
pub fn free_frames() -> (u64, u64) {
    let f = lock_frames();
    (f.free_frames(), f.largest_run())
}

/// Takes `n` contiguous free frames (the vmap region's page tables, the
/// benchmark's scratch pages).
pub(crate) fn alloc_frames(n: u64) -> Option<Frames> {
    lock_frames().alloc(n)
}

/// Takes `n` contiguous free frames from the top of memory (the balloon:
/// keeps low memory for the heap's long runs).
pub(crate) fn alloc_frames_high(n: u64) -> Option<Frames> {
    lock_frames().alloc_high(n)
}

/// Gives the allocator frames it never handed out (balloon holes Xen has
/// filled again).
pub(crate) fn add_frames(frames: Range<Pfn>) -> Result<(), crate::memory::frames::FreeError> {
    lock_frames().add(frames)
}

/// Takes exactly the free frames `range` (the balloon's check holds the
/// frames Xen has just populated: `pv::held`).
pub(crate) fn take_frames(range: Range<Pfn>) -> Option<Frames> {
    FRAMES.lock().take(range)
}

/// Gives frames back to the allocator; on an error (the list of runs is
/// full) they stay out of it for good, which only loses free memory.
pub(crate) fn try_free_frames(run: Frames) -> Result<(), crate::memory::frames::FreeError> {
    FRAMES.lock().free(run).map_err(|(e, run)| {
        let _ = run.keep();
        e
    })
}

/// Returns frames taken with [`alloc_frames`].
pub(crate) fn free_frames_run(run: Frames) {
    lock_frames().free(run).map_err(|(e, _)| e).expect("returning frames taken with alloc_frames");
}

/// Bytes the heap has claimed from the frame allocator.
pub fn heap_bytes() -> u64 {
    HEAP_BYTES.load(Ordering::Relaxed)
}

/// Writes `pattern(word index)` over every free frame, reads it back and
/// returns the first mismatch (as a virtual address), or the bytes checked.
/// Frames are taken from the allocator for the duration.
pub fn pattern_test(pattern: impl Fn(u64) -> u64) -> Result<u64, VirtAddr> {
    let map = direct_map();
    let mut checked = 0;
    let mut taken: [Option<Frames>; 32] = core::array::from_fn(|_| None);
    let mut n = 0;
    let mut result = Ok(());
    while n < taken.len() {
        let run = {
            let mut f = lock_frames();
            let largest = f.largest_run();
            f.alloc(largest)
        };
        let Some(run) = run else { break };
        let (start, end) = (map.virt(run.start()).0, map.virt(run.range().end).0);
        let words = (end - start) / 8;
        // SAFETY: the frames were just taken from the allocator, so nothing
        // else refers to them; they are mapped writable in the direct map.
        let mem = unsafe { core::slice::from_raw_parts_mut(start as *mut u64, words as usize) };
        for (i, w) in mem.iter_mut().enumerate() {
            // Volatile, so the compiler cannot skip the memory round trip.
            // SAFETY: `w` is a valid, exclusive u64.
            unsafe { core::ptr::write_volatile(w, pattern(start / 8 + i as u64)) };
        }
        for (i, w) in mem.iter().enumerate() {
            // SAFETY: as above.
            if unsafe { core::ptr::read_volatile(w) } != pattern(start / 8 + i as u64) {
                result = Err(VirtAddr(start + i as u64 * 8));
                break;
            }
        }
        checked += end - start;
        taken[n] = Some(run);
        n += 1;
        if result.is_err() {
            break;
        }
    }
    let mut f = lock_frames();
    for run in taken[..n].iter_mut().filter_map(Option::take) {
        f.free(run).map_err(|(e, _)| e).expect("returning frames just taken");
    }
    result.map(|()| checked)
}

/// PVH: a native page-table update round trip through the scratch page:
/// a free frame is mapped at the scratch page by writing its PTE and
/// `invlpg` (no hypercall), its bytes are seen and written through the
/// alias, and the scratch page is mapped back. Returns (read through the
/// alias, write through the alias seen in the direct map, restored).
pub fn scratch_round_trip() -> Result<(bool, bool, bool), MmuError> {
    use crate::pvh::memory::{map_scratch, SCRATCH_VA};
    let run = lock_frames().alloc(1).ok_or(MmuError {
        op: "scratch: no free frame",
        error: XenError::ENOMEM,
        done: 0,
    })?;
    let frame = direct_map().virt(run.start()).0 as *mut u64;
    let scratch = SCRATCH_VA as *mut u64;
    // SAFETY: the frame was just taken from the allocator (exclusive,
    // mapped in the direct map); the scratch page is kept out of the
    // allocator and referenced by nothing, so aliasing it to the frame for
    // the duration of this function is sound. Volatile accesses keep the
    // compiler from merging the two views.
    let result = unsafe {
        frame.write_volatile(0x5eed_0001);
        map_scratch(Some(run.start()));
        let read = scratch.read_volatile() == 0x5eed_0001;
        scratch.write_volatile(0x5eed_0002);
        let written = frame.read_volatile() == 0x5eed_0002;
        map_scratch(None);
        scratch.write_volatile(0x5eed_0003);
        let restored = frame.read_volatile() == 0x5eed_0002
            && lookup(VirtAddr(SCRATCH_VA))
                .is_some_and(|p| p.mfn() == Mfn(SCRATCH_VA / PAGE_SIZE as u64));
        (read, written, restored)
    };
    lock_frames().free(run).map_err(|(e, _)| e).expect("returning a frame just taken");
    Ok(result)
}

/// PV: gives `pages` free pages back to Xen; returns the pfns, now holes
/// (the PVH back end has its own, `pvh::balloon`).
pub(crate) fn balloon_out(pages: u64) -> Result<Holes, MmuError> {
    let run = lock_frames().alloc_high(pages).ok_or(MmuError {
        op: "balloon: no free run that long",
        error: XenError::ENOMEM,
        done: 0,
    })?;
    let r = balloon::give_back(
        &mut GuestMmu,
        root(),
        &direct_map(),
        run.range(),
        &mut *BATCH_BUF.lock(),
    );
    // Which pages Xen took after a failure is in the P2M: on an error the
    // run stays out of the allocator rather than hand out holes.
    let pfns = run.keep();
    r.map(|()| Holes::new(pfns))
}

/// PV: takes `holes` back from Xen and gives the frames to the allocator.
/// Holes past the boot size may lack page tables: those are populated,
/// then mapped like start of day mapped the rest of memory. On an error
/// the holes come back (some may be filled: the P2M says which).
pub(crate) fn balloon_in(holes: Holes) -> Result<(), (MmuError, Holes)> {
    let pfns = holes.range();
    let r = if pfns.end.0 > info().layout.map.nr_pages {
        grow(pfns.clone())
    } else {
        balloon::take_back(
            &mut GuestMmu,
            root(),
            &direct_map(),
            pfns.clone(),
            &mut *BATCH_BUF.lock(),
        )
    };
    if let Err(e) = r {
        return Err((e, holes));
    }
    let err = MmuError { op: "balloon: freeing the frames", error: XenError::EINVAL, done: 0 };
    match lock_frames().add(holes.into_range()) {
        Ok(()) => Ok(()),
        // The list of free runs is full: the frames are the guest's again
        // but not free; say so rather than lose track of them silently.
        Err(_) => Err((err, Holes::new(pfns.start..pfns.start))),
    }
}

/// PV: the pfns past the boot size up to the P2M's end, never populated:
/// the balloon's oldest holes, handed out once (`None` after, or if the
/// P2M covers only the boot size).
pub(crate) fn unpopulated_holes() -> Option<Holes> {
    static TAKEN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    let (boot, end) = (info().layout.map.nr_pages, super::p2m().len() as u64);
    if end <= boot || TAKEN.swap(true, Ordering::Relaxed) {
        return None;
    }
    Some(Holes::new(Pfn(boot)..Pfn(end)))
}

/// Populates the holes `pfns` (past the boot size), records them in the
/// P2M and Xen's M2P, and maps them, making page tables from the
/// allocator where none exist yet.
fn grow(pfns: Range<Pfn>) -> Result<(), MmuError> {
    let mut mmu = GuestMmu;
    let mut buf = BATCH_BUF.lock();
    let mut pfn = pfns.start;
    while pfn < pfns.end {
        let n = ((pfns.end - pfn) as usize).min(balloon::CHUNK);
        let mut want = [Pfn(0); balloon::CHUNK];
        for (k, w) in want[..n].iter_mut().enumerate() {
            *w = pfn + k as u64;
        }
        let mut got = [Mfn(0); balloon::CHUNK];
        let filled = mmu.populate(&want[..n], &mut got[..n])?;
        let mut batch = pagetable::Batch::new(&mut buf[..]);
        for k in 0..filled {
            mmu.set_p2m(want[k], Some(got[k]));
            batch.push(&mut mmu, MmuUpdate::machphys(got[k], want[k]))?;
        }
        batch.flush(&mut mmu)?;
        if filled < n {
            return Err(MmuError { op: "populate_physmap", error: XenError::ENOMEM, done: filled });
        }
        pfn += n as u64;
    }
    let space = AddressSpace { root: root(), map: direct_map() };
    let plan = pagetable::plan(&mmu, &space, pfns.clone());
    let tables = if plan.tables == 0 {
        Pfn(0)..Pfn(0)
    } else {
        // Page tables for good: kept out of the allocator.
        lock_frames()
            .alloc(plan.tables)
            .ok_or(MmuError {
                op: "balloon: no frames for page tables",
                error: XenError::ENOMEM,
                done: 0,
            })?
            .keep()
    };
    let end = Pfn(MAPPED_END.load(Ordering::Relaxed));
    pagetable::map_range(&mut mmu, &space, pfns, tables, end, &[], &mut buf[..])?;
    Ok(())
}

/// Takes a free frame, makes it a pinned L1 table and undoes it all:
/// Xen refuses the pin while the frame is mapped writable and accepts it
/// once it is read-only. Returns (refused-while-writable, pinned, restored).
pub fn pin_round_trip() -> Result<(bool, bool, bool), MmuError> {
    let run = lock_frames().alloc(1).ok_or(MmuError {
        op: "pin: no free frame",
        error: XenError::ENOMEM,
        done: 0,
    })?;
    let pfn = run.start();
    let map = direct_map();
    let va = map.virt(pfn);
    let mut mmu = GuestMmu;
    let mfn = mmu.pfn_to_mfn(pfn).expect("a free frame has a machine frame");
    // SAFETY: the frame was just taken from the allocator: exclusive,
    // mapped writable. Zeroed so it validates as an empty L1.
    unsafe { core::ptr::write_bytes(va.0 as *mut u8, 0, PAGE_SIZE) };
    let refused = mmu.pin(Level::L1, mfn).is_err();
    let rw = Pte::new(mfn, DATA_FLAGS);
    let result = mmu.remap(&[(va, rw.read_only())]).and_then(|()| {
        mmu.pin(Level::L1, mfn)?;
        let writable_refused = mmu.remap(&[(va, rw)]).is_err();
        mmu.unpin(mfn)?;
        mmu.remap(&[(va, rw)])?;
        Ok((refused, writable_refused, lookup(va).is_some_and(|p| p.writable())))
    });
    match result {
        Ok(_) => lock_frames().free(run).map_err(|(e, _)| e).expect("returning a frame just taken"),
        // The frame may still be a pinned table or read-only: never reuse it.
        Err(_) => {
            let _ = run.keep();
        }
    }
    result
}

/// The heap's source of memory: runs of frames from the frame allocator,
/// at least 2 MiB at a time, claimed through the direct map.
#[derive(Debug)]
pub struct FrameSource;

/// Smallest heap growth, in pages.
const HEAP_GROWTH_PAGES: u64 = 512;

// SAFETY: acquire only touches the Talc it is given, and the frame
// allocator's own lock (never the heap's), and never allocates.
unsafe impl talc::source::Source for FrameSource {
    fn acquire<B: talc::base::binning::Binning>(
        talc: &mut talc::base::Talc<Self, B>,
        layout: Layout,
    ) -> Result<(), ()> {
        // Room for the allocation, its alignment and Talc's metadata.
        let need = crate::memory::layout::bytes_to_pages(
            layout.size() as u64 + layout.align() as u64 + 4096,
        );
        let run = {
            // Another vCPU may hold the frame allocator (SMP), and Xen may
            // have preempted it there: wait for it, spinning, then yielding
            // to Xen, up to a second. This vCPU holding it (a re-entry)
            // never frees it: give up at once.
            let mut f = None;
            let me = crate::smp::current();
            let mut deadline = None;
            for i in 0u32.. {
                f = try_lock_frames();
                if f.is_some() || FRAMES_HOLDER.load(Ordering::Acquire) == me {
                    break;
                }
                if i < 100_000 {
                    core::hint::spin_loop();
                    continue;
                }
                let now = crate::now_ns();
                if now >= *deadline.get_or_insert(now + 1_000_000_000) {
                    break;
                }
                let _ = hypercall::ops::sched_op::yield_now();
            }
            let Some(mut f) = f else {
                return Err(());
            };
            f.alloc(need.max(HEAP_GROWTH_PAGES)).or_else(|| f.alloc(need))
        };
        let Some(run) = run.filter(|_| INFO.get().is_some()) else {
            let (free, largest) =
                try_lock_frames().map_or((0, 0), |f| (f.free_frames(), f.largest_run()));
            emergency_print(format_args!(
                "out of memory: the heap cannot grow by {} bytes (align {}): {} frames free, longest run {}, heap {} KiB\n",
                layout.size(),
                layout.align(),
                free,
                largest,
                heap_bytes() / 1024
            ));
            return Err(());
        };
        // The heap keeps its memory for good.
        let run = run.keep();
        let map = direct_map();
        let base = map.virt(run.start).0 as *mut u8;
        let size = (run.frame_count() as usize) * PAGE_SIZE;
        // SAFETY: the run was just taken from the frame allocator, so it is
        // exclusively the heap's from now on; it is mapped writable in the
        // direct map.
        match unsafe { talc.claim(base, size) } {
            Some(_) => {
                HEAP_BYTES.fetch_add(size as u64, Ordering::Relaxed);
                Ok(())
            }
            None => Err(()),
        }
    }
}

#[global_allocator]
static HEAP: talc::TalcLock<spin::Mutex<()>, FrameSource> = talc::TalcLock::new(FrameSource);

/// PV: maps the page at `va` (a frame of the direct map taken from the
/// allocator and kept for good) read-only, on this vCPU (SMP: a new vCPU's
/// GDT frame, which Xen takes only while no writable mapping of it exists).
///
/// # Safety
/// Nothing may write the page through `va` afterwards, and no other vCPU
/// may hold a writable translation of it (none has run yet).
pub(crate) unsafe fn make_read_only(va: VirtAddr) -> Result<(), MmuError> {
    let pte = lookup(va).ok_or(MmuError {
        op: "read-only: unmapped",
        error: XenError::ENOENT,
        done: 0,
    })?;
    GuestMmu.remap(&[(va, pte.read_only())])
}

/// PV: unmaps the page at `va` (a kept frame: a secondary vCPU's stack
/// guard page), on this vCPU.
///
/// # Safety
/// Nothing may refer to the page, and no other vCPU may hold a
/// translation of it (none has run on it yet).
pub(crate) unsafe fn unmap_page(va: VirtAddr) -> Result<(), MmuError> {
    let mut old = [None];
    pagetable::unmap_pages(&mut GuestMmu, root(), va, &mut old, &mut *BATCH_BUF.lock())
}
