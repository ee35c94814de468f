//! Per-type counters for the trace summaries: a fixed table (no heap: the
//! hypercall trace starts before memory does), keyed by a small `Copy`
//! key, in first-seen order.

/// Calls (or deliveries, or requests) of one type and what they cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row<K> {
    pub key: K,
    pub count: u64,
    pub total: u64,
    pub min: u64,
    pub max: u64,
}

/// Up to `N` types; the rest are counted together as `overflow`.
#[derive(Debug)]
pub struct Table<K, const N: usize> {
    rows: [Option<Row<K>>; N],
    /// Records of types that did not fit.
    pub overflow: u64,
}

impl<K: Copy + PartialEq, const N: usize> Table<K, N> {
    pub const fn new() -> Self {
        Self { rows: [None; N], overflow: 0 }
    }

    /// Counts one record of type `key` that cost `cost`.
    pub fn add(&mut self, key: K, cost: u64) {
        for slot in self.rows.iter_mut() {
            match slot {
                Some(r) if r.key == key => {
                    r.count += 1;
                    r.total = r.total.saturating_add(cost);
                    r.min = r.min.min(cost);
                    r.max = r.max.max(cost);
                    return;
                }
                Some(_) => {}
                None => {
                    *slot = Some(Row { key, count: 1, total: cost, min: cost, max: cost });
                    return;
                }
            }
        }
        self.overflow += 1;
    }

    /// The rows, in first-seen order.
    pub fn rows(&self) -> impl Iterator<Item = &Row<K>> {
        self.rows.iter().flatten()
    }

    /// Records counted in rows (overflow excluded).
    pub fn total(&self) -> u64 {
        self.rows().map(|r| r.count).sum()
    }
}

impl<K: Copy + PartialEq, const N: usize> Default for Table<K, N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_key_with_cost_bounds_and_overflow() {
        let mut t: Table<&str, 2> = Table::new();
        t.add("a", 10);
        t.add("b", 5);
        t.add("a", 30);
        t.add("c", 1);
        let rows: Vec<_> = t.rows().copied().collect();
        assert_eq!(rows[0], Row { key: "a", count: 2, total: 40, min: 10, max: 30 });
        assert_eq!(rows[1], Row { key: "b", count: 1, total: 5, min: 5, max: 5 });
        assert_eq!((t.total(), t.overflow), (3, 1));
    }
}
