//! Pages a driver shares with a backend (ring pages, bounce buffers, RX
//! and TX buffers): page-aligned heap memory that Rust only ever sees as
//! `AtomicU32` words, because the backend may write it at any time while
//! it is granted. The owned page type of every driver's environment
//! (`pv_drivers::env::PageSet`; ring indices are 32-bit atomics, which
//! `SharedPage`'s 64-bit words cannot give).

extern crate alloc;

use crate::memory::layout::VirtAddr;
use crate::pv::mm;
use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use core::ptr::NonNull;
use core::sync::atomic::AtomicU32;
use hypercall::{Mfn, PAGE_SIZE};
use pv_drivers::env::{PageSet, PAGE_WORDS};

/// `n` consecutive zeroed pages of the heap.
pub struct SharedPages {
    ptr: NonNull<AtomicU32>,
    pages: usize,
}

// SAFETY: the memory is only reached through `&[AtomicU32]`, which is Sync.
unsafe impl Send for SharedPages {}

impl SharedPages {
    fn layout(pages: usize) -> Layout {
        Layout::from_size_align(pages.max(1) * PAGE_SIZE, PAGE_SIZE).expect("page layout")
    }

    /// `None` when the heap is out of memory.
    pub fn new(pages: usize) -> Option<SharedPages> {
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc_zeroed(Self::layout(pages)) };
        NonNull::new(p.cast::<AtomicU32>()).map(|ptr| SharedPages { ptr, pages })
    }
}

impl PageSet for SharedPages {
    fn words(&self) -> &[AtomicU32] {
        // SAFETY: `ptr` is a live allocation of `pages` pages (zeroed, so
        // valid atomics), owned by `self`; only shared references to it
        // are ever made, and all access is atomic.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.pages * PAGE_WORDS) }
    }

    fn frame(&self, i: usize) -> Mfn {
        assert!(i < self.pages);
        let va = VirtAddr(self.ptr.as_ptr() as u64 + (i * PAGE_SIZE) as u64);
        let pfn = mm::direct_map().pfn(va).expect("heap pages are in the direct map");
        super::pfn_to_mfn(pfn).expect("heap pages have a machine frame")
    }
}

impl Drop for SharedPages {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; drivers drop a
        // page set only once no grant of it remains (they keep or leak the
        // ones whose revoke was refused, as `PageSet` asks).
        unsafe { dealloc(self.ptr.as_ptr().cast(), Self::layout(self.pages)) }
    }
}
