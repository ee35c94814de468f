//! Summary statistics of timed samples.

/// min / median / p99 / max of a set of samples (cycles).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub n: usize,
    pub min: u64,
    pub median: u64,
    pub p99: u64,
    pub max: u64,
}

/// The sample at quantile `permille`/1000 (nearest rank) of sorted `s`.
fn quantile(s: &[u64], permille: usize) -> u64 {
    let rank = (permille * s.len()).div_ceil(1000).clamp(1, s.len());
    s[rank - 1]
}

impl Summary {
    /// Summarises `samples` (sorted in place). `None` for no samples.
    pub fn of(samples: &mut [u64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        Some(Summary {
            n: samples.len(),
            min: samples[0],
            median: quantile(samples, 500),
            p99: quantile(samples, 990),
            max: samples[samples.len() - 1],
        })
    }

    /// Each figure minus `overhead`, never below zero.
    pub fn minus(self, overhead: u64) -> Summary {
        Summary {
            min: self.min.saturating_sub(overhead),
            median: self.median.saturating_sub(overhead),
            p99: self.p99.saturating_sub(overhead),
            max: self.max.saturating_sub(overhead),
            ..self
        }
    }

    /// Each figure divided by `k` (per-item cost of a batch of `k`).
    pub fn per(self, k: u64) -> Summary {
        let k = k.max(1);
        Summary {
            min: self.min / k,
            median: self.median / k,
            p99: self.p99 / k,
            max: self.max / k,
            ..self
        }
    }
}

/// Cycles to nanoseconds at `tsc_hz`.
pub fn cycles_to_ns(cycles: u64, tsc_hz: u64) -> u64 {
    if tsc_hz == 0 {
        return 0;
    }
    (u128::from(cycles) * 1_000_000_000 / u128::from(tsc_hz)) as u64
}

/// How much dearer (percent) than the same calls made separately a
/// multicall may measure and still count as "no worse": noise margin on
/// minimums.
pub const MULTICALL_MARGIN_PERCENT: u64 = 10;

/// Whether a multicall (minimum `multi` cycles) is no dearer than the same
/// hypercalls made one by one (`separate`), within
/// [`MULTICALL_MARGIN_PERCENT`].
///
/// "No dearer", not "cheaper": how much batching saves depends on what a
/// guest-to-Xen round trip costs against Xen's per-entry work, and that
/// differs between Xen releases. Under QEMU's TCG, a multicall of 32
/// `xen_version`s costs 0.6x-0.9x the 32 separate calls on Xen 4.17, but the
/// same on Xen 4.20 (0.98x to 1.02x over three runs), whose hypercall round trip is
/// as cheap as its multicall's handling of one entry. Batching page-table
/// updates (`mmu_update`) pays on both, and is checked strictly.
pub fn multicall_no_dearer(multi: u64, separate: u64) -> bool {
    multi.saturating_mul(100) <= separate.saturating_mul(100 + MULTICALL_MARGIN_PERCENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let mut s: Vec<u64> = (1..=100).rev().collect();
        let x = Summary::of(&mut s).unwrap();
        assert_eq!((x.min, x.median, x.p99, x.max, x.n), (1, 50, 99, 100, 100));
        let mut one = [7];
        assert_eq!(Summary::of(&mut one).unwrap().p99, 7);
        assert_eq!(Summary::of(&mut []), None);
    }

    #[test]
    fn overhead_and_batches() {
        let x = Summary { n: 3, min: 10, median: 20, p99: 30, max: 40 };
        assert_eq!(x.minus(15), Summary { n: 3, min: 0, median: 5, p99: 15, max: 25 });
        assert_eq!(x.per(10), Summary { n: 3, min: 1, median: 2, p99: 3, max: 4 });
        assert_eq!(cycles_to_ns(3_000, 3_000_000_000), 1_000);
        assert_eq!(cycles_to_ns(5, 0), 0);
    }

    #[test]
    fn multicall_verdict() {
        // Xen 4.17 under TCG: batching pays.
        assert!(multicall_no_dearer(19994, 34268));
        // Xen 4.20 under TCG: even, either way round by a little.
        assert!(multicall_no_dearer(18486, 18226));
        assert!(multicall_no_dearer(18226, 18486));
        // Clearly dearer: a broken multicall.
        assert!(!multicall_no_dearer(21000, 18226));
        assert!(multicall_no_dearer(u64::MAX, u64::MAX));
    }
}
