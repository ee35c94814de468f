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

/// How many of the sorted `samples` are at or below `overhead` (the
/// timer's own median): they come out as 0 once it is subtracted. Under
/// emulation an operation cheaper than the timer's jitter (a plain call, a
/// null hypercall on a fast model) honestly measures as nothing; the count
/// says how often, instead of pretending a figure.
pub fn at_or_below(sorted: &[u64], overhead: u64) -> usize {
    sorted.partition_point(|&s| s <= overhead)
}

/// `num / den` for reports, with two decimals; `n/a` when the denominator
/// measured as 0 (at or below the timer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ratio(pub u64, pub u64);

impl Ratio {
    /// The ratio in hundredths, rounded to nearest; `None` for a zero
    /// denominator.
    pub fn hundredths(self) -> Option<u64> {
        let (num, den) = (u128::from(self.0), u128::from(self.1));
        (den != 0).then(|| ((num * 100 + den / 2) / den).min(u128::from(u64::MAX)) as u64)
    }
}

impl core::fmt::Display for Ratio {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.hundredths() {
            Some(h) => write!(f, "{}.{:02}", h / 100, h % 100),
            None => f.write_str("n/a"),
        }
    }
}

/// How many samples each figure takes for `iters` (the `bench.iters`
/// setting: 10,000, or 300 with `bench.quick=1`). The host's report and
/// the boot test hold the same plan (`build/src/bench.rs`,
/// `expected_samples`) and check every `BENCH` line against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Single operations.
    pub iters: usize,
    /// `mmu_update` of 64 entries, the multicall and its 32 separate calls.
    pub quarter: usize,
    /// `mmu_update` of 512 entries.
    pub sixteenth: usize,
    /// XenStore reads (each waits for xenstored in dom0).
    pub store: usize,
}

impl Plan {
    pub fn new(iters: usize) -> Plan {
        let iters = iters.max(1);
        Plan {
            iters,
            quarter: iters.div_ceil(4),
            sixteenth: iters.div_ceil(16),
            store: (iters / 20).max(20),
        }
    }

    /// Calls of the operation for one figure of `samples`: the warm-up
    /// (`samples / 10 + 1`) and the timed ones.
    pub fn calls(samples: usize) -> usize {
        samples + samples / 10 + 1
    }
}

/// Passes of the paging suite's working-set walk for `iters` (each pass
/// reads thousands of pages): 5 in quick mode (300), 20 in a full run.
/// The host's report holds the same rule (`build/src/pagingbench.rs`).
pub fn walk_passes(iters: usize) -> usize {
    (iters / 500).clamp(5, 20)
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
    fn clamped_samples_are_counted() {
        let s = [3, 5, 5, 6, 9];
        assert_eq!(at_or_below(&s, 5), 3);
        assert_eq!(at_or_below(&s, 2), 0);
        assert_eq!(at_or_below(&s, 9), 5);
        assert_eq!(at_or_below(&[], 9), 0);
    }

    #[test]
    fn ratios_print_two_decimals_or_na() {
        assert_eq!(Ratio(670, 2496).to_string(), "0.27");
        assert_eq!(Ratio(19994, 34268).to_string(), "0.58");
        assert_eq!(Ratio(3, 2).to_string(), "1.50");
        assert_eq!(Ratio(1, 0).to_string(), "n/a");
        assert_eq!(Ratio(0, 7).to_string(), "0.00");
        assert_eq!(Ratio(u64::MAX, 1).hundredths(), Some(u64::MAX));
    }

    #[test]
    fn the_plan_for_quick_and_full_runs() {
        assert_eq!(Plan::new(300), Plan { iters: 300, quarter: 75, sixteenth: 19, store: 20 });
        assert_eq!(
            Plan::new(10_000),
            Plan { iters: 10_000, quarter: 2_500, sixteenth: 625, store: 500 }
        );
        assert_eq!(Plan::calls(300), 331);
        assert_eq!((walk_passes(300), walk_passes(10_000), walk_passes(1)), (5, 20, 5));
        assert_eq!(Plan::new(0).iters, 1);
    }
}
