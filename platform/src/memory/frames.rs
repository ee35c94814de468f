//! The physical frame allocator: free pseudo-physical frames as a short,
//! sorted list of runs. It needs no memory of its own (it runs before the
//! heap exists and feeds the heap), and a guest's free memory is a handful
//! of long runs: what Xen left after the bootstrap structures, minus page
//! tables, heap growth and balloon holes.

use core::ops::Range;
use hypercall::Pfn;

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
    pub fn alloc(&mut self, n: u64) -> Option<Range<Pfn>> {
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
        Some(Pfn(s).run(n))
    }

    /// Takes `n` contiguous frames from the top of the highest run that has
    /// them (keeps low memory for the heap's long runs).
    pub fn alloc_high(&mut self, n: u64) -> Option<Range<Pfn>> {
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
        Some(Pfn(e - n)..Pfn(e))
    }

    /// Returns `frames` to the pool, merging with neighbours.
    pub fn free(&mut self, frames: Range<Pfn>) -> Result<(), FreeError> {
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
    use hypercall::FrameRange;

    fn r(s: u64, e: u64) -> Range<Pfn> {
        Pfn(s)..Pfn(e)
    }

    #[test]
    fn allocates_lowest_first_and_merges_on_free() {
        let mut a = FrameAllocator::new();
        a.free(r(100, 200)).unwrap();
        a.free(r(300, 400)).unwrap();
        assert_eq!(a.free_frames(), 200);
        assert_eq!(a.alloc(50), Some(r(100, 150)));
        assert_eq!(a.alloc(60), Some(r(300, 360)));
        assert_eq!(a.alloc(100), None);
        a.free(r(100, 150)).unwrap();
        a.free(r(360, 400)).unwrap_err(); // already free
        a.free(r(150, 200)).unwrap_err();
        a.free(r(300, 360)).unwrap();
        assert_eq!(a.runs().collect::<Vec<_>>(), vec![r(100, 200), r(300, 400)]);
        a.free(r(200, 300)).unwrap();
        assert_eq!(a.runs().collect::<Vec<_>>(), vec![r(100, 400)]);
        assert_eq!(a.free_frames(), 300);
        assert_eq!(a.largest_run(), 300);
    }

    #[test]
    fn alloc_high_takes_from_the_top() {
        let mut a = FrameAllocator::new();
        a.free(r(0, 10)).unwrap();
        a.free(r(20, 30)).unwrap();
        assert_eq!(a.alloc_high(4), Some(r(26, 30)));
        assert_eq!(a.alloc_high(10), Some(r(0, 10)));
        assert_eq!(a.free_frames(), 6);
    }

    #[test]
    fn overlapping_frees_are_refused() {
        let mut a = FrameAllocator::new();
        a.free(r(10, 20)).unwrap();
        assert_eq!(a.free(r(5, 11)), Err(FreeError::Overlap));
        assert_eq!(a.free(r(19, 25)), Err(FreeError::Overlap));
        assert_eq!(a.free(r(0, 100)), Err(FreeError::Overlap));
        assert_eq!(a.free_frames(), 10);
    }

    #[test]
    fn fragmentation_is_an_error_not_a_leak() {
        let mut a = FrameAllocator::new();
        for k in 0..MAX_RUNS as u64 {
            a.free(r(k * 10, k * 10 + 5)).unwrap();
        }
        assert_eq!(a.free(r(10_000, 10_001)), Err(FreeError::TooFragmented));
        // Filling a gap merges runs, so it still works.
        a.free(r(5, 10)).unwrap();
        assert_eq!(a.free_frames(), MAX_RUNS as u64 * 5 + 5);
    }

    #[test]
    fn random_alloc_free_keeps_the_count() {
        let mut a = FrameAllocator::new();
        a.free(r(0, 4096)).unwrap();
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
            let held_n: u64 = held.iter().map(|r| r.frame_count()).sum();
            assert_eq!(a.free_frames() + held_n, 4096);
        }
        for run in held {
            a.free(run).unwrap();
        }
        assert_eq!(a.runs().collect::<Vec<_>>(), vec![r(0, 4096)]);
    }
}
