//! The physical frame allocator: free pseudo-physical frames as a short,
//! sorted list of runs. It needs no memory of its own (it runs before the
//! heap exists and feeds the heap), and a guest's free memory is a handful
//! of long runs: what Xen left after the bootstrap structures, minus page
//! tables, heap growth and balloon holes.
//!
//! Frames leave the allocator as [`Frames`], an owned run (neither `Copy`
//! nor `Clone`) that only [`FrameAllocator::alloc`] makes: freeing takes it
//! back by value, so a run cannot be freed twice or freed by someone who
//! never had it, and code that keeps frames for good (page tables, the
//! heap, balloon holes) says so with [`Frames::keep`].

use core::ops::Range;
use hypercall::{FrameRange, Pfn};

/// A run of frames taken from a [`FrameAllocator`]: owned by whoever
/// holds it until given back with [`FrameAllocator::free`] or kept for
/// good with [`Frames::keep`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "frames not given back are lost to the allocator: free them or keep() them"]
pub struct Frames {
    range: Range<Pfn>,
}

impl Frames {
    /// The first frame.
    pub fn start(&self) -> Pfn {
        self.range.start
    }

    /// How many frames.
    pub fn count(&self) -> u64 {
        self.range.frame_count()
    }

    /// The frames' numbers (a view: the frames stay owned by `self`).
    pub fn range(&self) -> Range<Pfn> {
        self.range.clone()
    }

    /// Frame `k` of the run.
    pub fn pfn(&self, k: u64) -> Pfn {
        assert!(k < self.count(), "frame {k} of a run of {}", self.count());
        self.range.start.offset(k)
    }

    /// Keeps the frames for good: they never return to the allocator
    /// (page tables, the heap, frames given to Xen).
    pub fn keep(self) -> Range<Pfn> {
        self.range
    }
}

/// Most separate free runs kept. Freeing into a full list fails rather
/// than losing frames silently.
pub const MAX_RUNS: usize = 64;

/// Why frames could not be freed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FreeError {
    /// Part of the run is already free: a double free.
    Overlap,
    /// The list of runs is full.
    TooFragmented,
}

/// Free frames as sorted, disjoint, non-adjacent runs `[start, end)`.
pub struct FrameAllocator {
    runs: [(u64, u64); MAX_RUNS],
    len: usize,
    free: u64,
}

impl Default for FrameAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameAllocator {
    pub const fn new() -> Self {
        Self { runs: [(0, 0); MAX_RUNS], len: 0, free: 0 }
    }

    /// Free frames in all.
    pub fn free_frames(&self) -> u64 {
        self.free
    }

    /// The free runs, lowest first.
    #[cfg(test)]
    pub fn runs(&self) -> impl Iterator<Item = Range<Pfn>> + '_ {
        self.runs[..self.len].iter().map(|&(s, e)| Pfn(s)..Pfn(e))
    }

    /// The longest free run, in frames.
    pub fn largest_run(&self) -> u64 {
        self.runs[..self.len].iter().map(|&(s, e)| e - s).max().unwrap_or(0)
    }

    /// Takes `n` contiguous frames from the lowest run that has them.
    pub fn alloc(&mut self, n: u64) -> Option<Frames> {
        if n == 0 {
            return None;
        }
        let i = self.runs[..self.len].iter().position(|&(s, e)| e - s >= n)?;
        let (s, e) = self.runs[i];
        if e - s == n {
            self.remove(i);
        } else {
            self.runs[i].0 = s + n;
        }
        self.free -= n;
        Some(Frames { range: Pfn(s).run(n) })
    }

    /// Takes `n` contiguous frames from the top of the highest run that has
    /// them (keeps low memory for the heap's long runs).
    pub fn alloc_high(&mut self, n: u64) -> Option<Frames> {
        if n == 0 {
            return None;
        }
        let i = self.runs[..self.len].iter().rposition(|&(s, e)| e - s >= n)?;
        let (s, e) = self.runs[i];
        if e - s == n {
            self.remove(i);
        } else {
            self.runs[i].1 = e - n;
        }
        self.free -= n;
        Some(Frames { range: Pfn(e - n)..Pfn(e) })
    }

    /// Takes exactly the frames `range`, if every one of them is free and
    /// the list of runs has room for what is left around them (`None`
    /// otherwise: nothing is taken). The balloon's migration check takes
    /// back the very frames Xen has just populated.
    pub fn take(&mut self, range: Range<Pfn>) -> Option<Frames> {
        let (s, e) = (range.start.0, range.end.0);
        if s >= e {
            return None;
        }
        let i = self.runs[..self.len].iter().position(|&(rs, re)| rs <= s && e <= re)?;
        let (rs, re) = self.runs[i];
        match (rs == s, re == e) {
            (true, true) => self.remove(i),
            (true, false) => self.runs[i].0 = e,
            (false, true) => self.runs[i].1 = s,
            (false, false) => {
                if self.len == MAX_RUNS {
                    return None;
                }
                self.runs.copy_within(i..self.len, i + 1);
                self.runs[i].1 = s;
                self.runs[i + 1].0 = e;
                self.len += 1;
            }
        }
        self.free -= e - s;
        Some(Frames { range })
    }

    /// Gives `frames` back, merging with neighbours. On an error (the
    /// list of runs is full) the frames come back to the caller.
    pub fn free(&mut self, frames: Frames) -> Result<(), (FreeError, Frames)> {
        self.add(frames.range.clone()).map_err(|e| (e, frames))
    }

    /// Adds frames the allocator never handed out: the free memory at
    /// start of day, balloon holes Xen has filled again. Platform-only,
    /// so code above it cannot free frames it does not own.
    pub(crate) fn add(&mut self, frames: Range<Pfn>) -> Result<(), FreeError> {
        let (s, e) = (frames.start.0, frames.end.0);
        if s >= e {
            return Ok(());
        }
        // First run that ends at or after `s`.
        let i = self.runs[..self.len].partition_point(|&(_, re)| re < s);
        if i < self.len && self.runs[i].0 < e && self.runs[i].1 > s {
            return Err(FreeError::Overlap);
        }
        let joins_prev = i < self.len && self.runs[i].1 == s;
        let next = if joins_prev { i + 1 } else { i };
        let joins_next = next < self.len && self.runs[next].0 == e;
        if next < self.len && self.runs[next].0 < e {
            return Err(FreeError::Overlap);
        }
        match (joins_prev, joins_next) {
            (true, true) => {
                self.runs[i].1 = self.runs[next].1;
                self.remove(next);
            }
            (true, false) => self.runs[i].1 = e,
            (false, true) => self.runs[next].0 = s,
            (false, false) => {
                if self.len == MAX_RUNS {
                    return Err(FreeError::TooFragmented);
                }
                self.runs.copy_within(i..self.len, i + 1);
                self.runs[i] = (s, e);
                self.len += 1;
            }
        }
        self.free += e - s;
        Ok(())
    }

    fn remove(&mut self, i: usize) {
        self.runs.copy_within(i + 1..self.len, i);
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: u64, e: u64) -> Range<Pfn> {
        Pfn(s)..Pfn(e)
    }

    #[test]
    fn allocates_lowest_first_and_merges_on_free() {
        let mut a = FrameAllocator::new();
        a.add(r(100, 200)).unwrap();
        a.add(r(300, 400)).unwrap();
        assert_eq!(a.free_frames(), 200);
        let low = a.alloc(50).unwrap();
        assert_eq!(low.range(), r(100, 150));
        let high = a.alloc(60).unwrap();
        assert_eq!(high.range(), r(300, 360));
        assert_eq!(a.alloc(100), None);
        a.free(low).unwrap();
        a.add(r(360, 400)).unwrap_err(); // already free
        a.add(r(150, 200)).unwrap_err();
        a.free(high).unwrap();
        assert_eq!(a.runs().collect::<Vec<_>>(), vec![r(100, 200), r(300, 400)]);
        a.add(r(200, 300)).unwrap();
        assert_eq!(a.runs().collect::<Vec<_>>(), vec![r(100, 400)]);
        assert_eq!(a.free_frames(), 300);
        assert_eq!(a.largest_run(), 300);
    }

    #[test]
    fn alloc_high_takes_from_the_top() {
        let mut a = FrameAllocator::new();
        a.add(r(0, 10)).unwrap();
        a.add(r(20, 30)).unwrap();
        assert_eq!(a.alloc_high(4).map(Frames::keep), Some(r(26, 30)));
        assert_eq!(a.alloc_high(10).map(Frames::keep), Some(r(0, 10)));
        assert_eq!(a.free_frames(), 6);
    }

    #[test]
    fn take_takes_exactly_the_range_asked_for() {
        let mut a = FrameAllocator::new();
        a.add(r(0, 100)).unwrap();
        a.add(r(200, 300)).unwrap();
        // Across a gap, partly used, or empty: nothing is taken.
        assert_eq!(a.take(r(90, 210)), None);
        assert_eq!(a.take(r(150, 160)), None);
        assert_eq!(a.take(r(5, 5)), None);
        assert_eq!(a.free_frames(), 200);
        // The middle of a run splits it; the ends shorten it.
        assert_eq!(a.take(r(40, 60)).map(Frames::keep), Some(r(40, 60)));
        assert_eq!(a.take(r(0, 10)).map(Frames::keep), Some(r(0, 10)));
        assert_eq!(a.take(r(250, 300)).map(Frames::keep), Some(r(250, 300)));
        let whole = a.take(r(200, 250)).unwrap();
        assert_eq!(a.runs().collect::<Vec<_>>(), vec![r(10, 40), r(60, 100)]);
        assert_eq!(a.free_frames(), 70);
        a.free(whole).unwrap();
        assert_eq!(a.free_frames(), 120);
    }

    #[test]
    fn take_needing_a_run_of_its_own_is_refused_when_the_list_is_full() {
        let mut a = FrameAllocator::new();
        for k in 0..MAX_RUNS as u64 {
            a.add(r(k * 10, k * 10 + 5)).unwrap();
        }
        assert_eq!(a.take(r(1, 3)), None);
        assert_eq!(a.take(r(0, 3)).map(Frames::keep), Some(r(0, 3)));
        assert_eq!(a.free_frames(), MAX_RUNS as u64 * 5 - 3);
    }

    #[test]
    fn overlapping_frees_are_refused() {
        let mut a = FrameAllocator::new();
        a.add(r(10, 20)).unwrap();
        assert_eq!(a.add(r(5, 11)), Err(FreeError::Overlap));
        assert_eq!(a.add(r(19, 25)), Err(FreeError::Overlap));
        assert_eq!(a.add(r(0, 100)), Err(FreeError::Overlap));
        assert_eq!(a.free_frames(), 10);
    }

    #[test]
    fn a_run_that_cannot_be_freed_comes_back() {
        let mut a = FrameAllocator::new();
        for k in 0..MAX_RUNS as u64 {
            a.add(r(k * 10, k * 10 + 5)).unwrap();
        }
        // Taking all of run 1 and part of run 3, then filling the list again.
        let one = a.alloc(5).unwrap();
        assert_eq!(one.range(), r(0, 5));
        a.add(r(10_000, 10_001)).unwrap();
        let part = a.alloc(2).unwrap();
        assert_eq!(part.range(), r(10, 12));
        // Freeing `one` needs a run of its own, and the list is full.
        let (err, back) = a.free(one).unwrap_err();
        assert_eq!(err, FreeError::TooFragmented);
        assert_eq!(back.range(), r(0, 5));
        // Freeing `part` merges with its neighbour: no new run.
        a.free(part).unwrap();
    }

    #[test]
    fn fragmentation_is_an_error_not_a_leak() {
        let mut a = FrameAllocator::new();
        for k in 0..MAX_RUNS as u64 {
            a.add(r(k * 10, k * 10 + 5)).unwrap();
        }
        assert_eq!(a.add(r(10_000, 10_001)), Err(FreeError::TooFragmented));
        // Filling a gap merges runs, so it still works.
        a.add(r(5, 10)).unwrap();
        assert_eq!(a.free_frames(), MAX_RUNS as u64 * 5 + 5);
    }

    #[test]
    fn random_alloc_free_keeps_the_count() {
        let mut a = FrameAllocator::new();
        a.add(r(0, 4096)).unwrap();
        let mut held = Vec::new();
        let mut seed = 12345u64;
        for _ in 0..2000 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            if seed >> 63 == 0 || held.is_empty() {
                if let Some(run) = a.alloc((seed >> 40) % 37 + 1) {
                    held.push(run);
                }
            } else {
                let k = (seed >> 20) as usize % held.len();
                a.free(held.swap_remove(k)).unwrap();
            }
            let held_n: u64 = held.iter().map(Frames::count).sum();
            assert_eq!(a.free_frames() + held_n, 4096);
        }
        for run in held {
            a.free(run).unwrap();
        }
        assert_eq!(a.runs().collect::<Vec<_>>(), vec![r(0, 4096)]);
    }
}
