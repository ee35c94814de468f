//! The page-table builder: x86-64 four-level tables, changed only through
//! Xen (a PV guest's page-table frames are read-only to it).
//!
//! Xen's rules (`xen/include/public/xen.h`, `mmu_update`): a frame in use
//! as a page table may not be mapped writable anywhere, and an entry may
//! only point at frames of this domain. So the builder
//! 1. counts the tables a range needs ([`plan`]), takes that many frames in
//!    one contiguous run, and makes any existing mapping of them read-only
//!    (`update_va_mapping`, many per multicall);
//! 2. writes every entry of each new table with `mmu_update` while the table
//!    is still an ordinary frame (Xen checks nothing then), children before
//!    parents, so that the one request linking a table into its parent makes
//!    Xen validate a complete table; maps table frames read-only wherever
//!    the direct map covers them;
//! 3. batches the requests: as many per `mmu_update` as the buffer holds.
//!
//! Everything goes through [`Mmu`], so the same code runs on Xen and against
//! the fake MMU of the unit tests.

use super::layout::{DirectMap, VirtAddr};
use core::fmt;
use core::ops::Range;
use hypercall::abi::mmu::MmuUpdate;
use hypercall::abi::xen::pte;
use hypercall::{FrameRange, MachineAddr, Mfn, Pfn, XenError, PAGE_SIZE};

/// Entries in a table of any level.
pub const ENTRIES: usize = 512;

/// A page-table entry.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
#[repr(transparent)]
pub struct Pte(pub u64);

impl fmt::Debug for Pte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pte({:#x})", self.0)
    }
}

/// Bits of a data page mapping (Xen wants ACCESSED/DIRTY preset; a 64-bit
/// PV kernel runs in ring 3, so its pages are USER).
pub const DATA_FLAGS: u64 = pte::PRESENT | pte::RW | pte::USER | pte::ACCESSED | pte::DIRTY;
/// Bits of an entry that points at a lower table.
pub const TABLE_FLAGS: u64 = pte::PRESENT | pte::RW | pte::USER | pte::ACCESSED;

impl Pte {
    pub const EMPTY: Pte = Pte(0);

    pub const fn new(mfn: Mfn, flags: u64) -> Self {
        Pte((mfn.0 << 12) & pte::ADDR_MASK | flags)
    }

    pub const fn present(self) -> bool {
        self.0 & pte::PRESENT != 0
    }

    pub const fn writable(self) -> bool {
        self.0 & pte::RW != 0
    }

    pub const fn mfn(self) -> Mfn {
        Mfn((self.0 & pte::ADDR_MASK) >> 12)
    }

    /// The same mapping without write access.
    pub const fn read_only(self) -> Self {
        Pte(self.0 & !pte::RW)
    }
}

/// A page-table level: L1 maps 4 KiB pages, L4 is the root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    L1 = 1,
    L2 = 2,
    L3 = 3,
    L4 = 4,
}

impl Level {
    /// Bytes one entry of this level covers.
    pub const fn span(self) -> u64 {
        1 << (12 + 9 * (self as u32 - 1))
    }

    /// The index of `va` in a table of this level.
    pub const fn index(self, va: VirtAddr) -> usize {
        ((va.0 / self.span()) % ENTRIES as u64) as usize
    }

    pub const fn below(self) -> Option<Level> {
        match self {
            Level::L1 => None,
            Level::L2 => Some(Level::L1),
            Level::L3 => Some(Level::L2),
            Level::L4 => Some(Level::L3),
        }
    }
}

/// The machine address of entry `index` of the table in frame `table`.
pub const fn entry_addr(table: Mfn, index: usize) -> MachineAddr {
    MachineAddr(table.addr().0 + (index * 8) as u64)
}

/// A hypercall (or a fake one) that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmuError {
    /// Which operation: "mmu_update", "update_va_mapping", ...
    pub op: &'static str,
    pub error: XenError,
    /// Requests of the batch that took effect before the failure.
    pub done: usize,
}

impl fmt::Display for MmuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed after {} requests: {}", self.op, self.done, self.error)
    }
}

/// What the builder needs from Xen (or a fake of it).
pub trait Mmu {
    /// The machine frame behind `pfn` (the P2M), `None` for a hole.
    fn pfn_to_mfn(&self, pfn: Pfn) -> Option<Mfn>;
    /// Entry `index` of the page table in frame `table`. Only called for
    /// tables that were linked before the current operation started.
    fn read_entry(&self, table: Mfn, index: usize) -> Pte;
    /// `mmu_update`: applies the requests in order.
    fn update(&mut self, batch: &[MmuUpdate]) -> Result<(), MmuError>;
    /// `mmu_update` then a flush of this vCPU's TLB (one round trip where
    /// the implementation can: a multicall).
    fn update_and_flush(&mut self, batch: &[MmuUpdate]) -> Result<(), MmuError> {
        self.update(batch)?;
        self.flush_tlb()
    }
    /// `update_va_mapping` with `INVLPG` for each pair: the entry that maps
    /// `va` becomes `pte`.
    fn remap(&mut self, maps: &[(VirtAddr, Pte)]) -> Result<(), MmuError>;
    /// `MMUEXT_PIN_Ln_TABLE`: validates `table` as a table of `level` and
    /// keeps it one until unpinned, linked or not.
    fn pin(&mut self, level: Level, table: Mfn) -> Result<(), MmuError>;
    /// `MMUEXT_UNPIN_TABLE`.
    fn unpin(&mut self, table: Mfn) -> Result<(), MmuError>;
    /// `MMUEXT_TLB_FLUSH_LOCAL`.
    fn flush_tlb(&mut self) -> Result<(), MmuError>;
}

/// An address space: its root table and the direct map in it.
#[derive(Clone, Copy, Debug)]
pub struct AddressSpace {
    pub root: Mfn,
    pub map: DirectMap,
}

/// How the direct map was extended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapStats {
    /// New page-table frames.
    pub tables: u64,
    /// Entries written with `mmu_update` (new leaves, links, empty slots).
    pub entries: u64,
    /// Leaf entries that map a page.
    pub pages: u64,
    /// `mmu_update` batches sent.
    pub batches: u64,
    /// Table frames that were mapped writable and had to be made read-only.
    pub made_read_only: u64,
}

/// Queues `mmu_update` requests and sends them when the buffer is full.
pub struct Batch<'b> {
    buf: &'b mut [MmuUpdate],
    len: usize,
    pub sent: u64,
}

impl<'b> Batch<'b> {
    pub fn new(buf: &'b mut [MmuUpdate]) -> Self {
        assert!(!buf.is_empty(), "a batch needs room for one request");
        Self { buf, len: 0, sent: 0 }
    }

    pub fn push<M: Mmu>(&mut self, mmu: &mut M, req: MmuUpdate) -> Result<(), MmuError> {
        if self.len == self.buf.len() {
            self.flush(mmu)?;
        }
        self.buf[self.len] = req;
        self.len += 1;
        Ok(())
    }

    pub fn flush<M: Mmu>(&mut self, mmu: &mut M) -> Result<(), MmuError> {
        if self.len > 0 {
            mmu.update(&self.buf[..self.len])?;
            self.sent += 1;
            self.len = 0;
        }
        Ok(())
    }

    /// Sends what is queued and flushes the TLB, in one round trip if the
    /// MMU can.
    pub fn flush_with_tlb<M: Mmu>(&mut self, mmu: &mut M) -> Result<(), MmuError> {
        mmu.update_and_flush(&self.buf[..self.len])?;
        self.sent += 1;
        self.len = 0;
        Ok(())
    }
}

/// The walk shared by [`plan`] (counting) and [`map_range`] (writing).
trait Visit {
    fn read(&self, table: Mfn, index: usize) -> Pte;
    /// A frame for a new table (and counts it).
    fn new_table(&mut self) -> Result<Mfn, MmuError>;
    /// Entry `index` of `table` becomes `pte`.
    fn write(&mut self, table: Mfn, index: usize, pte: Pte) -> Result<(), MmuError>;
    /// The leaf entry for the page at `va`.
    fn leaf(&self, va: VirtAddr) -> Pte;
}

/// Makes every page of `[lo, hi)` mapped under `table` (of `level`, whose
/// first entry covers `base`). A `fresh` table has unknown contents: all
/// of its entries are written, empty ones outside the range included.
fn fill<V: Visit>(
    v: &mut V,
    table: Mfn,
    level: Level,
    fresh: bool,
    base: u64,
    range: &Range<u64>,
) -> Result<(), MmuError> {
    for i in 0..ENTRIES {
        let lo = base + i as u64 * level.span();
        let hi = lo + level.span();
        let covers = lo < range.end && hi > range.start;
        if !covers {
            if fresh {
                v.write(table, i, Pte::EMPTY)?;
            }
            continue;
        }
        let old = if fresh { Pte::EMPTY } else { v.read(table, i) };
        match level.below() {
            None => {
                if !old.present() {
                    v.write(table, i, v.leaf(VirtAddr(lo)))?;
                }
            }
            Some(below) if old.present() => fill(v, old.mfn(), below, false, lo, range)?,
            Some(below) => {
                let child = v.new_table()?;
                fill(v, child, below, true, lo, range)?;
                v.write(table, i, Pte::new(child, TABLE_FLAGS))?;
            }
        }
    }
    Ok(())
}

struct Count<'a, M> {
    mmu: &'a M,
    stats: MapStats,
}

impl<M: Mmu> Visit for Count<'_, M> {
    fn read(&self, table: Mfn, index: usize) -> Pte {
        self.mmu.read_entry(table, index)
    }
    fn new_table(&mut self) -> Result<Mfn, MmuError> {
        self.stats.tables += 1;
        Ok(Mfn(0))
    }
    fn write(&mut self, _: Mfn, _: usize, _: Pte) -> Result<(), MmuError> {
        self.stats.entries += 1;
        Ok(())
    }
    fn leaf(&self, _: VirtAddr) -> Pte {
        Pte::EMPTY
    }
}

/// The direct-map pages `pfns` as a virtual range.
fn va_range(space: &AddressSpace, pfns: &Range<Pfn>) -> Range<u64> {
    space.map.virt(pfns.start).0..space.map.virt(pfns.end).0
}

/// Counts the new tables and entries mapping `pfns` would take.
pub fn plan<M: Mmu>(mmu: &M, space: &AddressSpace, pfns: Range<Pfn>) -> MapStats {
    let mut c = Count { mmu, stats: MapStats::default() };
    let range = va_range(space, &pfns);
    if !range.is_empty() {
        // Counting never fails.
        let _ = fill(&mut c, space.root, Level::L4, false, 0, &range);
    }
    c.stats
}

struct Write<'a, 'b, M> {
    mmu: &'a mut M,
    map: DirectMap,
    tables: Range<u64>,
    next_table: u64,
    read_only: &'a [Range<Pfn>],
    batch: Batch<'b>,
    stats: MapStats,
}

impl<M: Mmu> Write<'_, '_, M> {
    fn is_read_only(&self, pfn: Pfn) -> bool {
        self.tables.contains(&pfn.0) || self.read_only.iter().any(|r| r.contains(&pfn))
    }
}

impl<M: Mmu> Visit for Write<'_, '_, M> {
    fn read(&self, table: Mfn, index: usize) -> Pte {
        self.mmu.read_entry(table, index)
    }
    fn new_table(&mut self) -> Result<Mfn, MmuError> {
        if self.next_table >= self.tables.end {
            // plan() and the walk disagree: a bug, not a Xen error.
            return Err(MmuError { op: "page-table plan", error: XenError::ENOMEM, done: 0 });
        }
        let pfn = Pfn(self.next_table);
        self.next_table += 1;
        self.stats.tables += 1;
        self.mmu.pfn_to_mfn(pfn).ok_or(MmuError {
            op: "page-table frame",
            error: XenError::EINVAL,
            done: 0,
        })
    }
    fn write(&mut self, table: Mfn, index: usize, pte: Pte) -> Result<(), MmuError> {
        self.stats.entries += 1;
        self.batch.push(self.mmu, MmuUpdate::pt(entry_addr(table, index), pte.0))
    }
    fn leaf(&self, va: VirtAddr) -> Pte {
        let Some(pfn) = self.map.pfn(va) else {
            return Pte::EMPTY;
        };
        match self.mmu.pfn_to_mfn(pfn) {
            None => Pte::EMPTY,
            Some(mfn) if self.is_read_only(pfn) => Pte::new(mfn, DATA_FLAGS).read_only(),
            Some(mfn) => Pte::new(mfn, DATA_FLAGS),
        }
    }
}

/// Maps `pfns` in the direct map of `space`.
///
/// `tables` are the frames [`plan`] asked for, in one run; the ones below
/// `mapped_end` (the end of what is mapped now) are made read-only first.
/// `read_only` lists other pfns that must never be mapped writable (the
/// bootstrap page tables). `buf` is the `mmu_update` batch.
pub fn map_range<M: Mmu>(
    mmu: &mut M,
    space: &AddressSpace,
    pfns: Range<Pfn>,
    tables: Range<Pfn>,
    mapped_end: Pfn,
    read_only: &[Range<Pfn>],
    buf: &mut [MmuUpdate],
) -> Result<MapStats, MmuError> {
    let mut made_read_only = 0;
    // Step 1: table frames that are mapped now lose write access, a
    // buffer-full of update_va_mapping at a time.
    let mapped_tables = tables.start..tables.end.min(mapped_end).max(tables.start);
    let mut remaps = [(VirtAddr(0), Pte::EMPTY); 32];
    let mut n = 0;
    for pfn in mapped_tables.frames() {
        let mfn = mmu.pfn_to_mfn(pfn).ok_or(MmuError {
            op: "page-table frame",
            error: XenError::EINVAL,
            done: 0,
        })?;
        remaps[n] = (space.map.virt(pfn), Pte::new(mfn, DATA_FLAGS).read_only());
        n += 1;
        made_read_only += 1;
        if n == remaps.len() {
            mmu.remap(&remaps[..n])?;
            n = 0;
        }
    }
    if n > 0 {
        mmu.remap(&remaps[..n])?;
    }

    // Step 2: write the tables, children first.
    let mut w = Write {
        mmu,
        map: space.map,
        tables: tables.start.0..tables.end.0,
        next_table: tables.start.0,
        read_only,
        batch: Batch::new(buf),
        stats: MapStats::default(),
    };
    let range = va_range(space, &pfns);
    if !range.is_empty() {
        fill(&mut w, space.root, Level::L4, false, 0, &range)?;
    }
    w.batch.flush(w.mmu)?;
    let mut stats = w.stats;
    stats.batches = w.batch.sent;
    stats.made_read_only = made_read_only;
    stats.pages = pfns.frame_count();
    Ok(stats)
}

/// The L1 table and index that map `va`, if the tables above exist.
pub fn leaf_slot<M: Mmu>(mmu: &M, root: Mfn, va: VirtAddr) -> Option<(Mfn, usize)> {
    let mut table = root;
    let mut level = Level::L4;
    while let Some(below) = level.below() {
        let e = mmu.read_entry(table, level.index(va));
        if !e.present() {
            return None;
        }
        table = e.mfn();
        level = below;
    }
    Some((table, Level::L1.index(va)))
}

/// The leaf entry that maps `va`, if it is mapped.
pub fn lookup<M: Mmu>(mmu: &M, root: Mfn, va: VirtAddr) -> Option<Pte> {
    let (table, i) = leaf_slot(mmu, root, va)?;
    Some(mmu.read_entry(table, i)).filter(|e| e.present())
}

/// The first mapped page in `[lo, hi)`, skipping absent tables whole.
pub fn first_mapped<M: Mmu>(mmu: &M, root: Mfn, range: Range<VirtAddr>) -> Option<VirtAddr> {
    fn scan<M: Mmu>(
        mmu: &M,
        table: Mfn,
        level: Level,
        base: u64,
        range: &Range<u64>,
    ) -> Option<u64> {
        for i in 0..ENTRIES {
            let lo = base + i as u64 * level.span();
            if lo + level.span() <= range.start || lo >= range.end {
                continue;
            }
            let e = mmu.read_entry(table, i);
            if !e.present() {
                continue;
            }
            match level.below() {
                None => return Some(lo),
                Some(below) => {
                    if let Some(va) = scan(mmu, e.mfn(), below, lo, range) {
                        return Some(va);
                    }
                }
            }
        }
        None
    }
    scan(mmu, root, Level::L4, 0, &(range.start.0..range.end.0)).map(VirtAddr)
}

/// The first page at or after `from` that is not mapped (at most `limit`).
pub fn mapped_until<M: Mmu>(mmu: &M, root: Mfn, from: VirtAddr, limit: VirtAddr) -> VirtAddr {
    let mut va = from.page_down();
    while va < limit && lookup(mmu, root, va).is_some() {
        va = va.add(PAGE_SIZE as u64);
    }
    va
}

/// Unmaps `pages` pages from `va` (their tables must exist) and flushes
/// the TLB, returning the frames that were mapped through `out`.
pub fn unmap_pages<M: Mmu>(
    mmu: &mut M,
    root: Mfn,
    va: VirtAddr,
    out: &mut [Option<Mfn>],
    buf: &mut [MmuUpdate],
) -> Result<(), MmuError> {
    let mut batch = Batch::new(buf);
    for (k, slot) in out.iter_mut().enumerate() {
        let page = va.add(k as u64 * PAGE_SIZE as u64);
        let (table, i) = leaf_slot(mmu, root, page).ok_or(MmuError {
            op: "unmap: no page table",
            error: XenError::ENOENT,
            done: k,
        })?;
        let old = mmu.read_entry(table, i);
        *slot = old.present().then(|| old.mfn());
        batch.push(mmu, MmuUpdate::pt(entry_addr(table, i), 0))?;
    }
    batch.flush_with_tlb(mmu)
}

/// Maps page `k` at `va + k` to `mfns[k]` with `flags` (tables must exist).
/// With `pfns`, also records `mfn → pfn` in Xen's machine-to-phys table.
pub fn map_pages<M: Mmu>(
    mmu: &mut M,
    root: Mfn,
    va: VirtAddr,
    mfns: &[Mfn],
    pfns: Option<Pfn>,
    flags: u64,
    buf: &mut [MmuUpdate],
) -> Result<(), MmuError> {
    let mut batch = Batch::new(buf);
    for (k, &mfn) in mfns.iter().enumerate() {
        let page = va.add(k as u64 * PAGE_SIZE as u64);
        let (table, i) = leaf_slot(mmu, root, page).ok_or(MmuError {
            op: "map: no page table",
            error: XenError::ENOENT,
            done: k,
        })?;
        if let Some(first) = pfns {
            batch.push(mmu, MmuUpdate::machphys(mfn, first + k as u64))?;
        }
        batch.push(mmu, MmuUpdate::pt(entry_addr(table, i), Pte::new(mfn, flags).0))?;
    }
    batch.flush(mmu)
}

#[cfg(test)]
mod tests {
    use super::super::fake::{FakeXen, PAGE, VIRT_BASE};
    use super::*;

    /// Xen's start of day for `nr_pages` with `boot_pages` mapped, then the
    /// builder maps the rest, as `platform::mm` does.
    fn extend(nr_pages: u64, boot_pages: u64) -> (FakeXen, MapStats, Range<Pfn>) {
        let (mut x, pt_end) = FakeXen::boot(nr_pages, boot_pages, 0x73);
        let space = AddressSpace { root: x.root, map: x.map() };
        let end = mapped_until(&x, x.root, VirtAddr(VIRT_BASE), space.map.end());
        let mapped_end = space.map.pfn(end).unwrap_or(Pfn(nr_pages));
        assert_eq!(mapped_end, Pfn(boot_pages));
        let todo = mapped_end..Pfn(nr_pages);
        let p = plan(&x, &space, todo.clone());
        let first_free = pt_end + 1;
        let tables = Pfn(first_free)..Pfn(first_free + p.tables);
        let mut buf = vec![MmuUpdate::default(); 1024];
        let boot_tables = [Pfn(0x73)..Pfn(pt_end)];
        let stats =
            map_range(&mut x, &space, todo, tables.clone(), mapped_end, &boot_tables, &mut buf)
                .unwrap();
        assert_eq!(stats.tables, p.tables);
        assert_eq!(stats.entries, p.entries);
        x.audit();
        (x, stats, tables)
    }

    fn check_direct_map(x: &FakeXen, tables: &Range<Pfn>) {
        let nr = x.p2m.len() as u64;
        for pfn in 0..nr {
            let pte = x
                .translate(VIRT_BASE + pfn * PAGE)
                .unwrap_or_else(|| panic!("pfn {pfn:#x} unmapped"));
            assert_eq!(Some(pte.mfn()), x.p2m[pfn as usize]);
            let table = x.is_table(pte.mfn());
            assert_eq!(table, !pte.writable(), "pfn {pfn:#x}");
            if tables.contains(&Pfn(pfn)) {
                assert!(table);
            }
        }
        assert!(x.translate(VIRT_BASE + nr * PAGE).is_none());
        assert_eq!(first_mapped(x, x.root, VirtAddr(0)..VirtAddr(VIRT_BASE)), None);
    }

    #[test]
    fn maps_32_mib_with_few_batches() {
        // libxenguest maps 4 MiB for a small domU.
        let (x, stats, tables) = extend(8192, 1024);
        check_direct_map(&x, &tables);
        // 14 new L1s (the L2 exists); 7168 leaves plus 14 links.
        assert_eq!(stats.tables, 14);
        assert_eq!(stats.entries, 7168 + 14);
        assert_eq!(stats.batches, stats.entries.div_ceil(1024));
        // Every table frame lay in the mapped padding: made read-only first.
        assert_eq!(stats.made_read_only, 14);
        assert_eq!(x.log.len() as u64, stats.entries);
    }

    #[test]
    fn maps_1_gib_across_an_l3_boundary() {
        // 1 GiB from VIRT_BASE crosses 0x4000_0000: a new L2 is needed.
        let (x, stats, tables) = extend(262_144, 2048);
        check_direct_map(&x, &tables);
        // 512 L1s cover 1 GiB; 4 exist; one new L2 for the part past 1 GiB.
        assert_eq!(stats.tables, 508 + 1);
        assert_eq!(stats.made_read_only, stats.tables.min(2048 - tables.start.0));
    }

    #[test]
    fn table_frames_past_the_bootstrap_map_are_mapped_read_only_from_the_start() {
        // A 1 MiB bootstrap map: most of the 509 table frames lie beyond it,
        // so their first mapping (written by the builder) must be read-only.
        let (x, stats, tables) = extend(262_144, 256);
        check_direct_map(&x, &tables);
        assert!(tables.end.0 > 256);
        assert_eq!(stats.made_read_only, 256 - tables.start.0);
    }

    #[test]
    fn odd_sizes_leave_the_tail_of_the_last_table_empty() {
        let (x, _, tables) = extend(8192 + 5, 1024);
        check_direct_map(&x, &tables);
    }

    #[test]
    fn nothing_to_do_when_everything_is_mapped() {
        let (x, stats, _) = extend(1024, 1024);
        assert_eq!(stats.tables, 0);
        assert_eq!(stats.entries, 0);
        assert_eq!(x.log.len(), 0);
    }

    #[test]
    fn the_fake_rejects_a_writable_table() {
        let (mut x, pt_end) = FakeXen::boot(8192, 1024, 0x73);
        let root = x.root;
        let map = x.map();
        // Map the root table writable: Xen refuses.
        let va = map.virt(Pfn(0x73));
        let e = x.remap(&[(va, Pte::new(root, DATA_FLAGS))]).unwrap_err();
        assert_eq!(e.error, XenError::EINVAL);
        // Build without making the (mapped) table frames read-only first:
        // linking the first new table fails.
        let space = AddressSpace { root, map };
        let p = plan(&x, &space, Pfn(1024)..Pfn(8192));
        let tables = Pfn(pt_end + 1)..Pfn(pt_end + 1 + p.tables);
        let mut buf = vec![MmuUpdate::default(); 64];
        let e = map_range(&mut x, &space, Pfn(1024)..Pfn(8192), tables, Pfn(0), &[], &mut buf);
        assert_eq!(e.unwrap_err().error, XenError::EINVAL);
    }

    #[test]
    fn the_fake_rejects_foreign_frames() {
        let (mut x, _) = FakeXen::boot(2048, 1024, 0x73);
        let (table, i) = leaf_slot(&x, x.root, VirtAddr(VIRT_BASE)).unwrap();
        let req = MmuUpdate::pt(entry_addr(table, i), Pte::new(Mfn(0x12), DATA_FLAGS).0);
        assert_eq!(x.update(&[req]).unwrap_err().error, XenError::EPERM);
    }

    #[test]
    fn pinning_needs_a_read_only_frame() {
        let (mut x, pt_end) = FakeXen::boot(2048, 1024, 0x73);
        let pfn = Pfn(pt_end + 10);
        let mfn = x.pfn_to_mfn(pfn).unwrap();
        let va = x.map().virt(pfn);
        // Zero the frame through mmu_update (it is an ordinary frame now).
        let zero: Vec<_> = (0..ENTRIES).map(|i| MmuUpdate::pt(entry_addr(mfn, i), 0)).collect();
        x.update(&zero).unwrap();
        assert_eq!(x.pin(Level::L1, mfn).unwrap_err().error, XenError::EINVAL);
        x.remap(&[(va, Pte::new(mfn, DATA_FLAGS).read_only())]).unwrap();
        x.pin(Level::L1, mfn).unwrap();
        // Pinned: it may not be mapped writable again until unpinned.
        assert!(x.remap(&[(va, Pte::new(mfn, DATA_FLAGS))]).is_err());
        x.unpin(mfn).unwrap();
        x.remap(&[(va, Pte::new(mfn, DATA_FLAGS))]).unwrap();
        x.audit();
    }

    #[test]
    fn unmap_and_map_pages_round_trip() {
        let (mut x, _) = FakeXen::boot(2048, 1024, 0x73);
        let root = x.root;
        let va = VirtAddr(VIRT_BASE + 600 * PAGE);
        let mut old = [None; 4];
        let mut buf = vec![MmuUpdate::default(); 16];
        unmap_pages(&mut x, root, va, &mut old, &mut buf).unwrap();
        assert_eq!(x.flushes, 1);
        assert!(lookup(&x, root, va).is_none());
        assert_eq!(first_mapped(&x, root, va..va.add(4 * PAGE)), None);
        assert_eq!(old[0], x.p2m[600]);
        let mfns: Vec<Mfn> = old.iter().map(|m| m.unwrap()).collect();
        map_pages(&mut x, root, va, &mfns, None, DATA_FLAGS, &mut buf).unwrap();
        assert_eq!(lookup(&x, root, va).map(|p| p.mfn()), x.p2m[600]);
        x.audit();
    }
}
