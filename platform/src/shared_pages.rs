//! Memory this domain shares with Xen or another domain: page-aligned
//! heap pages that Rust only ever sees as atomics, because the peer may
//! write them at any time while they are granted (ring pages, bounce
//! buffers, RX and TX buffers, the self-test's and benchmark's pages).
//!
//! These are the only pages the grant table takes ([`Grantable`], sealed:
//! no other crate can add a kind), and a grant keeps a [`Hold`] on their
//! memory: the owner's handle and every live grant share it, and the
//! memory goes back to the heap when the last of them is gone. So a page
//! set dropped while a backend still maps one of its pages stays
//! allocated until that grant is revoked, and no grant can name memory
//! the kernel uses for anything else (its page tables, its heap).
//!
//! Two views of the same kind of memory: [`SharedPages`], `n` consecutive
//! pages as 32-bit words (the driver environment's `PageSet`: ring indices
//! are 32-bit atomics), and [`SharedPage`], one page as 64-bit words.
//! Mode-neutral: the frame a grant names is the back end's
//! ([`crate::xen_frame`]: the MFN under PV, the GFN under PVH).

extern crate alloc;

use crate::memory::layout::VirtAddr;
use alloc::alloc::{alloc_zeroed, dealloc, Layout};
use alloc::sync::Arc;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use hypercall::{Mfn, Pfn, PAGE_SIZE};
use pv_drivers::env::{PageSet, PAGE_WORDS};

/// `pages` consecutive zeroed heap pages, given back when dropped.
struct PageMemory {
    ptr: NonNull<u8>,
    pages: usize,
    /// The pseudo-physical frame of page 0; page `i`'s is `first + i`
    /// (checked in `new`). Fixed for the memory's life, where the machine
    /// frame behind it is not (a PV domain restored has new ones): a
    /// grant looks that up each time, in the P2M alone.
    first: Pfn,
}

// SAFETY: the memory is only ever reached through shared references to
// atomics (`words`), which are Send and Sync; the allocation itself is
// owned by this value alone and freed once, in `drop`.
unsafe impl Send for PageMemory {}
// SAFETY: as above.
unsafe impl Sync for PageMemory {}

impl PageMemory {
    fn layout(pages: usize) -> Layout {
        Layout::from_size_align(pages.max(1) * PAGE_SIZE, PAGE_SIZE).expect("page layout")
    }

    /// `None` when the heap is out of memory.
    fn new(pages: usize) -> Option<Arc<PageMemory>> {
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { alloc_zeroed(Self::layout(pages)) };
        let ptr = NonNull::new(p)?;
        let pfn_at = |i: usize| {
            let va = VirtAddr(p as u64 + (i * PAGE_SIZE) as u64);
            crate::xen_frame(va)
                .and_then(crate::pv::mfn_to_pfn)
                .expect("heap pages have a frame Xen knows")
        };
        let first = pfn_at(0);
        // The heap's pages are contiguous in the guest's physical space
        // too (the direct map and the image are linear): what `frame`
        // counts on.
        for i in 1..pages {
            assert_eq!(pfn_at(i), Pfn(first.0 + i as u64), "heap page {i} of {pages}");
        }
        Some(Arc::new(PageMemory { ptr, pages, first }))
    }

    /// The memory as `T` atomics (`AtomicU32` or `AtomicU64`).
    fn atomics<T>(&self) -> &[T] {
        let n = self.pages * PAGE_SIZE / core::mem::size_of::<T>();
        // SAFETY: `ptr` is a live, page-aligned allocation of `pages`
        // pages owned by `self` (zeroed at first, so valid atomics of
        // either width); only shared references to it are ever made, and
        // all access is atomic.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr().cast::<T>(), n) }
    }

    /// The frame Xen knows page `i` by.
    #[inline(always)]
    fn frame(&self, i: usize) -> Option<Mfn> {
        if i >= self.pages {
            return None;
        }
        // What `xen_frame` finds for the page's address, without finding
        // the pfn again: one P2M read (a grant's hot path, issue 17).
        let frame = crate::pv::pfn_to_mfn(Pfn(self.first.0 + i as u64))
            .filter(|m| m.0 != u64::MAX)
            .expect("heap pages have a frame Xen knows");
        Some(frame)
    }
}

impl Drop for PageMemory {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; this is the last
        // reference (the owner's handle and every grant's hold are gone),
        // so no grant names the pages any more.
        unsafe { dealloc(self.ptr.as_ptr(), Self::layout(self.pages)) }
    }
}

/// What a live grant keeps of its page (see the module comment).
pub struct Hold(#[expect(dead_code, reason = "held for its Drop only")] Arc<PageMemory>);

mod sealed {
    pub trait Sealed {}
}

/// Pages the grant table may share: [`SharedPages`] and [`SharedPage`]
/// only (the trait is sealed).
pub trait Grantable: sealed::Sealed + Sync {
    /// The frame of page `index` and a hold on the memory; `None` if
    /// there is no page `index`.
    fn share(&self, index: usize) -> Option<(Mfn, Hold)>;
}

/// `n` consecutive zeroed pages, seen as 32-bit words.
pub struct SharedPages {
    mem: Arc<PageMemory>,
}

impl SharedPages {
    /// `None` when the heap is out of memory.
    pub fn new(pages: usize) -> Option<SharedPages> {
        PageMemory::new(pages).map(|mem| SharedPages { mem })
    }

    /// The frame Xen knows page `i` by (for logs and checks: granting
    /// takes the pages, not this number).
    pub fn frame(&self, i: usize) -> Mfn {
        self.mem.frame(i).expect("a page of the set")
    }
}

impl PageSet for SharedPages {
    fn words(&self) -> &[AtomicU32] {
        self.mem.atomics()
    }
}

impl sealed::Sealed for SharedPages {}

impl Grantable for SharedPages {
    #[inline(always)]
    fn share(&self, index: usize) -> Option<(Mfn, Hold)> {
        Some((self.mem.frame(index)?, Hold(self.mem.clone())))
    }
}

/// One zeroed page, seen as 64-bit words: the self-test's and the
/// benchmark's grants, and the only destinations of our own frames a
/// grant copy may write ([`crate::pv::grants::copy`]).
pub struct SharedPage {
    mem: Arc<PageMemory>,
}

impl SharedPage {
    /// A zeroed page from the heap. Panics when the heap is out of memory,
    /// as `Box::new` does.
    pub fn new() -> SharedPage {
        SharedPage { mem: PageMemory::new(1).expect("out of memory for a shared page") }
    }

    /// The page's 512 words.
    pub fn words(&self) -> &[AtomicU64] {
        self.mem.atomics()
    }

    /// The frame Xen knows the page by.
    pub fn frame(&self) -> Mfn {
        self.mem.frame(0).expect("one page")
    }

    /// Byte `i` of the page.
    pub fn byte(&self, i: usize) -> u8 {
        self.words()[i / 8].load(Ordering::Relaxed).to_le_bytes()[i % 8]
    }
}

impl Default for SharedPage {
    fn default() -> Self {
        SharedPage::new()
    }
}

impl sealed::Sealed for SharedPage {}

impl Grantable for SharedPage {
    #[inline(always)]
    fn share(&self, index: usize) -> Option<(Mfn, Hold)> {
        Some((self.mem.frame(index)?, Hold(self.mem.clone())))
    }
}

const _: () = assert!(PAGE_WORDS * 4 == PAGE_SIZE);
