//! Frames held out of the frame allocator so that a check can write a
//! pattern into them and read it back later, across a suspend: the
//! balloon's migration check (`balloon.check=1`, docs/migration.md)
//! stamps the very frames Xen has just populated and reads them in the
//! new domain after a live migration, where a frame the toolstack never
//! sent reads back as something else (under PVH an unpopulated guest
//! frame reads as all ones through Xen's MMIO emulation).
//!
//! [`Held`] owns its frames (taken with [`take`], given back with
//! [`Held::release`] or kept for good with [`Held::keep`]), so the writes
//! cannot reach memory anything else uses. Mode-neutral: the direct map
//! is `pv::mm`'s in both modes.

use super::mm;
use crate::memory::frames::Frames;
use core::ops::Range;
use hypercall::{Pfn, PAGE_SIZE};

const WORDS: usize = PAGE_SIZE / 8;

/// Frames of ours, out of the allocator for a check.
#[must_use = "held frames are out of the allocator: release() or keep() them"]
pub struct Held {
    frames: Frames,
}

/// What [`Held::verify`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verified {
    /// Pages read.
    pub pages: u64,
    /// Pages with at least one word that differs.
    pub bad: u64,
    /// The first bad page: its pfn, the word index, what was read, what
    /// was written.
    pub first_bad: Option<(Pfn, usize, u64, u64)>,
}

/// Takes exactly the frames `range` out of the allocator (`None` unless
/// every one is free).
pub fn take(range: Range<Pfn>) -> Option<Held> {
    mm::take_frames(range).map(|frames| Held { frames })
}

impl Held {
    /// The frames (a view).
    pub fn range(&self) -> Range<Pfn> {
        self.frames.range()
    }

    fn page(&self, k: u64) -> *mut u64 {
        mm::direct_map().virt(self.frames.pfn(k)).0 as *mut u64
    }

    /// Writes `pattern(pfn, word index)` over every word of every frame.
    pub fn fill(&mut self, pattern: impl Fn(Pfn, usize) -> u64) {
        for k in 0..self.frames.count() {
            let pfn = self.frames.pfn(k);
            let page = self.page(k);
            for w in 0..WORDS {
                // SAFETY: the frame is ours (`self.frames`, taken from the
                // allocator: nothing else refers to it) and mapped
                // writable in the direct map; `w` is inside the page.
                // Volatile, so every word really goes to memory.
                unsafe { page.add(w).write_volatile(pattern(pfn, w)) };
            }
        }
    }

    /// Reads every frame back against `pattern`. A page whose first word
    /// differs is counted bad without reading the rest (an unpopulated
    /// frame costs an emulated access per word).
    pub fn verify(&self, pattern: impl Fn(Pfn, usize) -> u64) -> Verified {
        let mut v = Verified { pages: self.frames.count(), ..Verified::default() };
        for k in 0..self.frames.count() {
            let pfn = self.frames.pfn(k);
            let page = self.page(k);
            for w in 0..WORDS {
                // SAFETY: as in `fill`: our frame, mapped, `w` in the page.
                let got = unsafe { page.add(w).read_volatile() };
                let want = pattern(pfn, w);
                if got != want {
                    v.bad += 1;
                    v.first_bad.get_or_insert((pfn, w, got, want));
                    break;
                }
            }
        }
        v
    }

    /// Gives the frames back to the allocator (`Err`: its list of free
    /// runs was full, and the frames stay out of it).
    pub fn release(self) -> Result<(), crate::memory::frames::FreeError> {
        mm::try_free_frames(self.frames)
    }

    /// Keeps the frames out of the allocator for good (a frame that failed
    /// its check may not be memory at all).
    pub fn keep(self) -> Range<Pfn> {
        self.frames.keep()
    }
}
