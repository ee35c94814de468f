//! The start-of-day memory layout of a PV guest (`xen/include/public/xen.h`,
//! "Start-of-day memory layout"), and the direct map built on it.
//!
//! Xen maps one contiguous virtual region starting at `VIRT_BASE`, 1:1 onto
//! the first pfns: the image, the initial ramdisk, the P2M list, start_info,
//! the xenstore and console pages (domU), the bootstrap page tables and a
//! bootstrap stack, then at least 512 KiB of padding, ending on a 4 MiB
//! boundary. The guest extends the same linear map to all of its pages, so
//! pfn N is always at `VIRT_BASE + N * 4096`.

use core::fmt;
use hypercall::{Pfn, PAGE_SIZE};

/// A guest virtual address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct VirtAddr(pub u64);

impl fmt::Debug for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VirtAddr({:#x})", self.0)
    }
}

impl fmt::Display for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl VirtAddr {
    pub const fn add(self, bytes: u64) -> Self {
        VirtAddr(self.0 + bytes)
    }

    /// The address rounded down to its page.
    pub const fn page_down(self) -> Self {
        VirtAddr(self.0 & !(PAGE_SIZE as u64 - 1))
    }
}

/// Bytes in `pages` pages.
pub const fn pages_to_bytes(pages: u64) -> u64 {
    pages * PAGE_SIZE as u64
}

/// Pages needed for `bytes` bytes.
pub const fn bytes_to_pages(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE_SIZE as u64)
}

/// The linear map of pseudo-physical memory: pfn N at `base + N pages`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirectMap {
    pub base: VirtAddr,
    pub nr_pages: u64,
}

impl DirectMap {
    pub const fn virt(&self, pfn: Pfn) -> VirtAddr {
        self.base.add(pages_to_bytes(pfn.0))
    }

    /// The pfn an address of the direct map falls in.
    pub fn pfn(&self, va: VirtAddr) -> Option<Pfn> {
        let off = va.0.checked_sub(self.base.0)?;
        let pfn = off / PAGE_SIZE as u64;
        (pfn < self.nr_pages).then_some(Pfn(pfn))
    }

    /// One past the last byte of the map.
    pub const fn end(&self) -> VirtAddr {
        self.base.add(pages_to_bytes(self.nr_pages))
    }
}

/// What start_info (and the image) say about the bootstrap region, in
/// virtual addresses of that region.
#[derive(Clone, Copy, Debug, Default)]
pub struct BootInfo {
    pub virt_base: VirtAddr,
    pub nr_pages: u64,
    pub image_end: VirtAddr,
    /// The initial ramdisk: start and length in bytes (0 when none).
    pub module: (VirtAddr, u64),
    /// The P2M list: `nr_pages` u64s.
    pub mfn_list: VirtAddr,
    pub start_info: VirtAddr,
    /// The xenstore and console pages of a domU, as pfns (`None` in dom0).
    pub store: Option<Pfn>,
    pub console: Option<Pfn>,
    pub pt_base: VirtAddr,
    pub nr_pt_frames: u64,
}

/// Where the bootstrap structures end and free memory begins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootLayout {
    pub map: DirectMap,
    /// First pfn past every bootstrap element (and the bootstrap stack).
    pub first_free: Pfn,
    /// Pfns below this are certainly mapped by Xen (the 512 KiB padding
    /// guarantee); the real end is found by walking the page tables.
    pub surely_mapped: Pfn,
}

/// Pages of padding Xen guarantees after the last bootstrap element.
pub const BOOT_PADDING_PAGES: u64 = (512 * 1024) / PAGE_SIZE as u64;

impl BootInfo {
    /// The layout, or why the numbers Xen gave are inconsistent.
    pub fn layout(&self) -> Result<BootLayout, &'static str> {
        let map = DirectMap { base: self.virt_base, nr_pages: self.nr_pages };
        let end_of = |va: VirtAddr, bytes: u64| -> Result<u64, &'static str> {
            let first = map.pfn(va).ok_or("a bootstrap element lies outside the direct map")?;
            Ok(first.0 + bytes_to_pages(bytes + (va.0 & (PAGE_SIZE as u64 - 1))))
        };
        let mut end = end_of(self.virt_base, self.image_end.0 - self.virt_base.0)?;
        if self.module.1 > 0 {
            end = end.max(end_of(self.module.0, self.module.1)?);
        }
        end = end.max(end_of(self.mfn_list, self.nr_pages * 8)?);
        end = end.max(end_of(self.start_info, 1)?);
        for pfn in [self.store, self.console].into_iter().flatten() {
            end = end.max(pfn.0 + 1);
        }
        end = end.max(end_of(self.pt_base, pages_to_bytes(self.nr_pt_frames))?);
        // The bootstrap stack follows the page tables: one page. The guest
        // has left it for its own stack, but keep it out of the allocator
        // in case a builder gives more.
        let first_free = end + 1;
        if first_free > self.nr_pages {
            return Err("the bootstrap elements do not fit in nr_pages");
        }
        Ok(BootLayout {
            map,
            first_free: Pfn(first_free),
            surely_mapped: Pfn((first_free + BOOT_PADDING_PAGES).min(self.nr_pages)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> BootInfo {
        // A 32 MiB domU as libxenguest lays it out (pfns in comments).
        let base = VirtAddr(0x40_0000);
        let at = |pfn: u64| base.add(pages_to_bytes(pfn));
        BootInfo {
            virt_base: base,
            nr_pages: 8192,
            image_end: at(0x60).add(0), // image: pfns 0..0x60
            module: (VirtAddr(0), 0),
            mfn_list: at(0x60),       // 8192 * 8 = 16 pages: 0x60..0x70
            start_info: at(0x70),     // 0x70
            store: Some(Pfn(0x71)),   // 0x71
            console: Some(Pfn(0x72)), // 0x72
            pt_base: at(0x73),        // 0x73..0x79
            nr_pt_frames: 6,
        }
    }

    #[test]
    fn free_memory_starts_after_the_stack_page() {
        let l = info().layout().unwrap();
        assert_eq!(l.first_free, Pfn(0x7a));
        assert_eq!(l.surely_mapped, Pfn(0x7a + 128));
        assert_eq!(l.map.virt(Pfn(1)), VirtAddr(0x40_1000));
        assert_eq!(l.map.pfn(VirtAddr(0x40_1fff)), Some(Pfn(1)));
        assert_eq!(l.map.pfn(VirtAddr(0x3f_ffff)), None);
        assert_eq!(l.map.pfn(l.map.end()), None);
    }

    #[test]
    fn a_module_past_the_tables_moves_the_start_of_free_memory() {
        let mut i = info();
        i.module = (VirtAddr(0x40_0000 + pages_to_bytes(0x100)), 4097);
        assert_eq!(i.layout().unwrap().first_free, Pfn(0x103));
    }

    #[test]
    fn elements_outside_the_map_are_rejected() {
        let mut i = info();
        i.pt_base = VirtAddr(0x1000);
        assert!(i.layout().is_err());
        let mut i = info();
        i.nr_pages = 0x70;
        assert!(i.layout().is_err());
    }
}
