//! The boot timeline: when each start-up phase finished, measured from the
//! first instruction on the PV clock, printed once the app starts, so the
//! slow phase is obvious.

use core::fmt;

/// Phases recorded at most.
const MAX: usize = 16;

/// `(phase, ns since entry when it finished)` in order.
pub struct Timeline {
    marks: [(&'static str, u64); MAX],
    len: usize,
}

impl Timeline {
    pub const fn new() -> Self {
        Timeline { marks: [("", 0); MAX], len: 0 }
    }

    /// Records that `phase` finished at `ns` since entry (ignored when full).
    pub fn mark(&mut self, phase: &'static str, ns: u64) {
        if self.len < MAX {
            self.marks[self.len] = (phase, ns);
            self.len += 1;
        }
    }
}

impl Default for Timeline {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for Timeline {
    /// `boot timeline: memory 1.234 ms (+1.234), events 1.500 ms (+0.266), ...`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("boot timeline:")?;
        let mut prev = 0;
        for (i, &(phase, ns)) in self.marks[..self.len].iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            let d = ns.saturating_sub(prev);
            write!(
                f,
                "{sep}{phase} {}.{:03} ms (+{}.{:03})",
                ns / 1_000_000,
                ns / 1_000 % 1_000,
                d / 1_000_000,
                d / 1_000 % 1_000
            )?;
            prev = ns;
        }
        Ok(())
    }
}

#[cfg(target_os = "none")]
static TIMELINE: spin::Mutex<Timeline> = spin::Mutex::new(Timeline::new());

/// Records that `phase` just finished.
#[cfg(target_os = "none")]
pub fn mark(phase: &'static str) {
    let ns = platform::uptime_ns();
    TIMELINE.lock().mark(phase, ns);
}

/// Prints the timeline.
#[cfg(target_os = "none")]
pub fn print() {
    let t = TIMELINE.lock();
    crate::kprintln!("{}", *t);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_totals_and_deltas() {
        let mut t = Timeline::new();
        t.mark("memory", 1_234_000);
        t.mark("events", 1_500_500);
        assert_eq!(
            t.to_string(),
            "boot timeline: memory 1.234 ms (+1.234), events 1.500 ms (+0.266)"
        );
    }

    #[test]
    fn extra_phases_are_dropped_not_a_panic() {
        let mut t = Timeline::new();
        for _ in 0..MAX + 5 {
            t.mark("x", 1);
        }
        assert_eq!(t.to_string().matches(" x ").count(), MAX);
    }
}
