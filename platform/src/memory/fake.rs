//! A fake Xen MMU for the unit tests. It keeps page tables in a hash map of
//! frames, records every `mmu_update` request, and enforces the rules Xen
//! enforces on a PV guest:
//! - a frame becomes a page table of level N (when linked into a table of
//!   level N+1, or pinned) only if nothing maps it writable, and only if
//!   every present entry in it validates (recursively);
//! - a leaf entry may not map a page-table frame writable;
//! - every frame an entry points at, and every frame written, is the
//!   domain's own;
//! - a frame given back with `decrease_reservation` must not be mapped.
//!
//! Frames nobody wrote read as garbage (present entries pointing at foreign
//! frames), so code that relies on fresh frames being zero fails here.

use super::balloon::Reservation;
use super::layout::{DirectMap, VirtAddr};
use super::pagetable::{entry_addr, Level, Mmu, MmuError, Pte, DATA_FLAGS, ENTRIES, TABLE_FLAGS};
use hypercall::abi::mmu::{cmd, MmuUpdate};
use hypercall::{Mfn, Pfn, XenError, PAGE_SIZE};
use std::collections::{HashMap, HashSet};

pub const VIRT_BASE: u64 = 0x40_0000;
const GARBAGE: u64 = 0x0000_0bad_0000_0067;

#[derive(Default)]
pub struct FakeXen {
    pub p2m: Vec<Option<Mfn>>,
    owned: HashSet<u64>,
    mem: HashMap<u64, Box<[u64; ENTRIES]>>,
    /// Validated tables: level and references (links and pins).
    types: HashMap<u64, (Level, u32)>,
    pinned: HashSet<u64>,
    /// Mappings from validated L1 tables: (all, writable) per frame.
    maps: HashMap<u64, (u32, u32)>,
    m2p: HashMap<u64, u64>,
    next_mfn: u64,
    pub max_pages: u64,
    pub root: Mfn,
    /// Every `mmu_update` request, in order.
    pub log: Vec<MmuUpdate>,
    pub hypercalls: u64,
    pub flushes: u64,
}

fn err(op: &'static str, error: XenError, done: usize) -> MmuError {
    MmuError { op, error, done }
}

impl FakeXen {
    /// A domain of `nr_pages` whose first `boot_pages` are mapped at
    /// VIRT_BASE by bootstrap tables taken from pfns `pt_first..`, as
    /// Xen's domain builder leaves it. Machine frames run backwards from
    /// 0x90000, so mixing up pfns and mfns shows.
    pub fn boot(nr_pages: u64, boot_pages: u64, pt_first: u64) -> (Self, u64) {
        let mut x = FakeXen { next_mfn: 0x100000, max_pages: nr_pages, ..Default::default() };
        for pfn in 0..nr_pages {
            let mfn = 0x90000 - pfn;
            x.p2m.push(Some(Mfn(mfn)));
            x.owned.insert(mfn);
            x.m2p.insert(mfn, pfn);
        }
        let mfn = |x: &FakeXen, pfn: u64| x.p2m[pfn as usize].unwrap().0;
        let mut next_pt = pt_first;
        let mut alloc = |x: &mut FakeXen| {
            let m = mfn(x, next_pt);
            x.mem.insert(m, Box::new([0; ENTRIES]));
            next_pt += 1;
            m
        };
        let l4 = alloc(&mut x);
        let l3 = alloc(&mut x);
        let l2 = alloc(&mut x);
        x.mem.get_mut(&l4).unwrap()[0] = Pte::new(Mfn(l3), TABLE_FLAGS).0;
        x.mem.get_mut(&l3).unwrap()[0] = Pte::new(Mfn(l2), TABLE_FLAGS).0;
        let first_l2 = (VIRT_BASE >> 21) as usize;
        let l1s = boot_pages.div_ceil(512) as usize;
        let mut l1_frames = Vec::new();
        for k in 0..l1s {
            let l1 = alloc(&mut x);
            x.mem.get_mut(&l2).unwrap()[first_l2 + k] = Pte::new(Mfn(l1), TABLE_FLAGS).0;
            l1_frames.push(l1);
        }
        let pt_end = next_pt;
        for pfn in 0..boot_pages {
            let flags = if (pt_first..pt_end).contains(&pfn) {
                DATA_FLAGS & !hypercall::abi::xen::pte::RW
            } else {
                DATA_FLAGS
            };
            let l1 = l1_frames[(pfn / 512) as usize];
            x.mem.get_mut(&l1).unwrap()[(pfn % 512) as usize] =
                Pte::new(Mfn(mfn(&x, pfn)), flags).0;
        }
        x.root = Mfn(l4);
        x.pin(Level::L4, Mfn(l4)).expect("the fake's own start of day validates");
        (x, pt_end)
    }

    pub fn map(&self) -> DirectMap {
        DirectMap { base: VirtAddr(VIRT_BASE), nr_pages: self.p2m.len() as u64 }
    }

    fn entry(&self, table: u64, i: usize) -> u64 {
        self.mem.get(&table).map_or(GARBAGE, |t| t[i])
    }

    pub fn reservation(&self) -> u64 {
        self.owned.len() as u64
    }

    pub fn m2p(&self, mfn: Mfn) -> Option<Pfn> {
        self.m2p.get(&mfn.0).map(|&p| Pfn(p))
    }

    pub fn is_table(&self, mfn: Mfn) -> bool {
        self.types.contains_key(&mfn.0)
    }

    /// Takes a reference to `entry` as an entry of a table of `level`.
    fn get_entry(&mut self, level: Level, e: u64) -> Result<(), XenError> {
        let pte = Pte(e);
        if !pte.present() {
            return Ok(());
        }
        let target = pte.mfn().0;
        if !self.owned.contains(&target) {
            return Err(XenError::EPERM);
        }
        match level.below() {
            None => {
                if pte.writable() && self.types.contains_key(&target) {
                    return Err(XenError::EINVAL);
                }
                let m = self.maps.entry(target).or_default();
                m.0 += 1;
                m.1 += u32::from(pte.writable());
                Ok(())
            }
            Some(below) => self.get_table(target, below),
        }
    }

    fn put_entry(&mut self, level: Level, e: u64) {
        let pte = Pte(e);
        if !pte.present() {
            return;
        }
        let target = pte.mfn().0;
        match level.below() {
            None => {
                let m = self.maps.get_mut(&target).expect("mapping counted");
                m.0 -= 1;
                m.1 -= u32::from(pte.writable());
            }
            Some(_) => self.put_table(target),
        }
    }

    /// Makes `mfn` a table of `level` (or adds a reference to it).
    fn get_table(&mut self, mfn: u64, level: Level) -> Result<(), XenError> {
        if let Some((l, refs)) = self.types.get_mut(&mfn) {
            if *l != level {
                return Err(XenError::EINVAL);
            }
            *refs += 1;
            return Ok(());
        }
        if !self.owned.contains(&mfn) {
            return Err(XenError::EPERM);
        }
        if self.maps.get(&mfn).is_some_and(|m| m.1 > 0) {
            // Xen: "Bad type ... writable mapping exists".
            return Err(XenError::EINVAL);
        }
        self.types.insert(mfn, (level, 1));
        for i in 0..ENTRIES {
            let e = self.entry(mfn, i);
            if let Err(error) = self.get_entry(level, e) {
                for j in 0..i {
                    let e = self.entry(mfn, j);
                    self.put_entry(level, e);
                }
                self.types.remove(&mfn);
                return Err(error);
            }
        }
        Ok(())
    }

    fn put_table(&mut self, mfn: u64) {
        let (level, refs) = self.types.get_mut(&mfn).expect("a typed table");
        let level = *level;
        *refs -= 1;
        if *refs == 0 {
            self.types.remove(&mfn);
            for i in 0..ENTRIES {
                let e = self.entry(mfn, i);
                self.put_entry(level, e);
            }
        }
    }

    fn write_entry(&mut self, ma: u64, val: u64) -> Result<(), XenError> {
        let (table, i) = (ma >> 12, ((ma & 0xfff) / 8) as usize);
        if !self.owned.contains(&table) {
            return Err(XenError::EPERM);
        }
        if let Some(&(level, _)) = self.types.get(&table) {
            let old = self.entry(table, i);
            self.get_entry(level, val)?;
            self.put_entry(level, old);
        }
        self.mem.entry(table).or_insert_with(|| Box::new([GARBAGE; ENTRIES]))[i] = val;
        Ok(())
    }

    /// Every page-table frame reachable from the root: checks that none is
    /// mapped writable anywhere, by walking everything from scratch.
    pub fn audit(&self) {
        let mut tables = Vec::new();
        let mut writable = HashSet::new();
        let mut stack = vec![(self.root.0, Level::L4)];
        while let Some((t, level)) = stack.pop() {
            tables.push(t);
            for i in 0..ENTRIES {
                let e = Pte(self.entry(t, i));
                if !e.present() {
                    continue;
                }
                assert!(self.owned.contains(&e.mfn().0), "entry to a foreign frame");
                match level.below() {
                    Some(b) => stack.push((e.mfn().0, b)),
                    None if e.writable() => {
                        writable.insert(e.mfn().0);
                    }
                    None => {}
                }
            }
        }
        for t in tables {
            assert!(!writable.contains(&t), "table frame {t:#x} is mapped writable");
            assert!(self.types.contains_key(&t), "linked table {t:#x} not validated");
        }
    }

    /// The leaf entry mapping `va`, walking the fake's own tables.
    pub fn translate(&self, va: u64) -> Option<Pte> {
        let mut t = self.root.0;
        for level in [Level::L4, Level::L3, Level::L2, Level::L1] {
            let e = Pte(self.entry(t, level.index(VirtAddr(va))));
            if !e.present() {
                return None;
            }
            if level == Level::L1 {
                return Some(e);
            }
            t = e.mfn().0;
        }
        None
    }
}

impl Mmu for FakeXen {
    fn pfn_to_mfn(&self, pfn: Pfn) -> Option<Mfn> {
        self.p2m.get(pfn.0 as usize).copied().flatten()
    }

    fn read_entry(&self, table: Mfn, index: usize) -> Pte {
        Pte(self.entry(table.0, index))
    }

    fn update(&mut self, batch: &[MmuUpdate]) -> Result<(), MmuError> {
        self.hypercalls += 1;
        for (done, req) in batch.iter().enumerate() {
            self.log.push(*req);
            let ma = req.target().0;
            let r = match req.command() {
                cmd::NORMAL_PT_UPDATE => self.write_entry(ma, req.val),
                cmd::MACHPHYS_UPDATE if self.owned.contains(&(ma >> 12)) => {
                    self.m2p.insert(ma >> 12, req.val);
                    Ok(())
                }
                _ => Err(XenError::EINVAL),
            };
            r.map_err(|e| err("mmu_update", e, done))?;
        }
        Ok(())
    }

    fn remap(&mut self, maps: &[(VirtAddr, Pte)]) -> Result<(), MmuError> {
        for (done, &(va, pte)) in maps.iter().enumerate() {
            self.hypercalls += 1;
            let mut t = self.root.0;
            for level in [Level::L4, Level::L3, Level::L2] {
                let e = Pte(self.entry(t, level.index(va)));
                if !e.present() {
                    return Err(err("update_va_mapping", XenError::EINVAL, done));
                }
                t = e.mfn().0;
            }
            let ma = entry_addr(Mfn(t), Level::L1.index(va)).0;
            self.write_entry(ma, pte.0).map_err(|e| err("update_va_mapping", e, done))?;
        }
        Ok(())
    }

    fn pin(&mut self, level: Level, table: Mfn) -> Result<(), MmuError> {
        self.hypercalls += 1;
        if self.pinned.contains(&table.0) {
            return Err(err("pin", XenError::EINVAL, 0));
        }
        self.get_table(table.0, level).map_err(|e| err("pin", e, 0))?;
        self.pinned.insert(table.0);
        Ok(())
    }

    fn unpin(&mut self, table: Mfn) -> Result<(), MmuError> {
        self.hypercalls += 1;
        if !self.pinned.remove(&table.0) {
            return Err(err("unpin", XenError::EINVAL, 0));
        }
        self.put_table(table.0);
        Ok(())
    }

    fn flush_tlb(&mut self) -> Result<(), MmuError> {
        self.hypercalls += 1;
        self.flushes += 1;
        Ok(())
    }
}

impl Reservation for FakeXen {
    fn decrease(&mut self, mfns: &[Mfn]) -> Result<usize, MmuError> {
        self.hypercalls += 1;
        for (done, mfn) in mfns.iter().enumerate() {
            let mapped = self.maps.get(&mfn.0).is_some_and(|m| m.0 > 0);
            if !self.owned.contains(&mfn.0) || mapped || self.types.contains_key(&mfn.0) {
                return Ok(done);
            }
            self.owned.remove(&mfn.0);
            self.m2p.remove(&mfn.0);
            self.mem.remove(&mfn.0);
        }
        Ok(mfns.len())
    }

    fn populate(&mut self, pfns: &[Pfn], out: &mut [Mfn]) -> Result<usize, MmuError> {
        self.hypercalls += 1;
        for (k, pfn) in pfns.iter().enumerate() {
            if self.reservation() >= self.max_pages {
                return Ok(k);
            }
            let mfn = self.next_mfn;
            self.next_mfn += 1;
            self.owned.insert(mfn);
            self.m2p.insert(mfn, pfn.0);
            out[k] = Mfn(mfn);
        }
        Ok(pfns.len())
    }

    fn set_p2m(&mut self, pfn: Pfn, mfn: Option<Mfn>) {
        self.p2m[pfn.0 as usize] = mfn;
    }
}

/// Bytes per page, as a u64.
pub const PAGE: u64 = PAGE_SIZE as u64;
