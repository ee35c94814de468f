//! Event storms: a backend that sends events with nothing behind them
//! keeps a polling service awake for nothing. Linux answers with its
//! "lateeoi" scheme (drivers/xen/events/events_base.c,
//! `xen_irq_lateeoi_locked`): a handler that found no work reports the
//! event spurious; from the second spurious event in a row the port stays
//! masked for `2^(n-2)` ms (at most 1 s) before it is unmasked again. This
//! is the same policy, for whoever polls: it says how long to keep the
//! source masked, and counts. Nothing is lost while masked: a masked port
//! still becomes pending, and unmasking delivers it.

/// Longest masking, in ns (Linux: one second).
pub const MAX_DELAY_NS: u64 = 1_000_000_000;

/// The lateeoi bookkeeping of one event source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Throttle {
    /// Spurious wake-ups in a row.
    in_a_row: u32,
    /// Spurious wake-ups in all.
    pub spurious: u64,
    /// Times the source was masked for a while.
    pub throttled: u64,
}

impl Throttle {
    /// After a wake-up by the source's events: did it find work? `Some(ns)`
    /// means "keep the source masked for `ns`".
    pub fn after_events(&mut self, did_work: bool) -> Option<u64> {
        if did_work {
            self.in_a_row = 0;
            return None;
        }
        self.in_a_row = self.in_a_row.saturating_add(1);
        self.spurious += 1;
        if self.in_a_row < 2 {
            return None;
        }
        self.throttled += 1;
        let ms = 1u64 << (self.in_a_row - 2).min(20);
        Some((ms * 1_000_000).min(MAX_DELAY_NS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 18 item 7: a flood of empty events made the service spin;
    /// the policy backs off exponentially to 1 s and counts.
    #[test]
    fn a_storm_backs_off_like_lateeoi_and_work_resets_it() {
        let mut t = Throttle::default();
        assert_eq!(t.after_events(false), None);
        let delays: Vec<u64> = (0..14).map(|_| t.after_events(false).unwrap()).collect();
        assert_eq!(&delays[..4], &[1_000_000, 2_000_000, 4_000_000, 8_000_000]);
        assert_eq!(*delays.last().unwrap(), MAX_DELAY_NS);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!((t.spurious, t.throttled), (15, 14));
        // Real work: back to normal at once.
        assert_eq!(t.after_events(true), None);
        assert_eq!(t.after_events(false), None);
        assert_eq!(t.after_events(false), Some(1_000_000));
        // A million spurious events in a row never overflow.
        for _ in 0..1_000_000 {
            assert!(t.after_events(false).unwrap() <= MAX_DELAY_NS);
        }
    }

    /// Time spent masked bounds the wake-ups a storm can cause: at most
    /// about one a second once it has gone on.
    #[test]
    fn a_storm_costs_about_one_wake_up_a_second() {
        let mut t = Throttle::default();
        let (mut now, mut wakes) = (0u64, 0u64);
        while now < 60 * MAX_DELAY_NS {
            wakes += 1;
            now += 10_000 + t.after_events(false).unwrap_or(0);
        }
        assert!(wakes < 80, "{wakes} wake-ups in 60 s of storm");
    }
}
