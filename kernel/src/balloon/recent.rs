//! The pfns the balloon populated since the last suspend, as sorted,
//! disjoint runs: at the next suspend the guest has Xen log each of them
//! (docs/migration.md, "Ballooning during a live migration"). Pure, so it
//! is checked on the host.

use alloc::vec::Vec;
use core::ops::Range;
use hypercall::Pfn;

/// Sorted, disjoint, non-adjacent runs of pfns.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PfnRuns {
    runs: Vec<Range<u64>>,
}

impl PfnRuns {
    pub const fn new() -> Self {
        PfnRuns { runs: Vec::new() }
    }

    /// Adds `r`, merging with the runs it touches.
    pub fn insert(&mut self, r: Range<Pfn>) {
        let (mut s, mut e) = (r.start.0, r.end.0);
        if s >= e {
            return;
        }
        // Runs that overlap or touch [s, e) are [i, j).
        let i = self.runs.partition_point(|x| x.end < s);
        let j = self.runs.partition_point(|x| x.start <= e);
        if i < j {
            s = s.min(self.runs[i].start);
            e = e.max(self.runs[j - 1].end);
        }
        self.runs.splice(i..j, core::iter::once(s..e));
    }

    /// Takes `r` out, splitting a run it lies inside.
    pub fn remove(&mut self, r: Range<Pfn>) {
        let (s, e) = (r.start.0, r.end.0);
        if s >= e {
            return;
        }
        let i = self.runs.partition_point(|x| x.end <= s);
        let j = self.runs.partition_point(|x| x.start < e);
        if i >= j {
            return;
        }
        let mut keep = Vec::new();
        if self.runs[i].start < s {
            keep.push(self.runs[i].start..s);
        }
        if self.runs[j - 1].end > e {
            keep.push(e..self.runs[j - 1].end);
        }
        self.runs.splice(i..j, keep);
    }

    /// Pages in all.
    pub fn pages(&self) -> u64 {
        self.runs.iter().map(|r| r.end - r.start).sum()
    }

    /// The runs, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = Range<Pfn>> + '_ {
        self.runs.iter().map(|r| Pfn(r.start)..Pfn(r.end))
    }

    /// Forgets every run.
    pub fn clear(&mut self) {
        self.runs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: u64, e: u64) -> Range<Pfn> {
        Pfn(s)..Pfn(e)
    }

    fn runs(p: &PfnRuns) -> Vec<(u64, u64)> {
        p.iter().map(|x| (x.start.0, x.end.0)).collect()
    }

    #[test]
    fn inserts_merge_what_they_touch() {
        let mut p = PfnRuns::new();
        p.insert(r(10, 20));
        p.insert(r(30, 40));
        p.insert(r(5, 5));
        assert_eq!(runs(&p), [(10, 20), (30, 40)]);
        p.insert(r(20, 30));
        assert_eq!(runs(&p), [(10, 40)]);
        p.insert(r(0, 2));
        p.insert(r(15, 50));
        assert_eq!(runs(&p), [(0, 2), (10, 50)]);
        assert_eq!(p.pages(), 42);
    }

    #[test]
    fn removes_split_and_trim() {
        let mut p = PfnRuns::new();
        p.insert(r(0, 100));
        p.insert(r(200, 300));
        p.remove(r(40, 60));
        assert_eq!(runs(&p), [(0, 40), (60, 100), (200, 300)]);
        p.remove(r(90, 250));
        assert_eq!(runs(&p), [(0, 40), (60, 90), (250, 300)]);
        p.remove(r(100, 200));
        p.remove(r(0, 40));
        assert_eq!(runs(&p), [(60, 90), (250, 300)]);
        p.remove(r(0, 1000));
        assert_eq!(p.pages(), 0);
    }

    #[test]
    fn random_operations_match_a_bitmap() {
        let mut p = PfnRuns::new();
        let mut bits = [false; 256];
        let mut seed = 7u64;
        for _ in 0..4000 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let a = (seed >> 33) % 256;
            let b = (a + (seed >> 20) % 40).min(256);
            if seed >> 63 == 0 {
                p.insert(r(a, b));
            } else {
                p.remove(r(a, b));
            }
            for bit in &mut bits[a as usize..b as usize] {
                *bit = seed >> 63 == 0;
            }
            let mut want = Vec::new();
            for (i, &on) in bits.iter().enumerate() {
                let i = i as u64;
                match (on, want.last_mut()) {
                    (true, Some((_, e))) if *e == i => *e = i + 1,
                    (true, _) => want.push((i, i + 1)),
                    _ => {}
                }
            }
            assert_eq!(runs(&p), want);
        }
    }
}
