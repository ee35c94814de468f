//! The Xen PV clock (`struct vcpu_time_info`) and the wall clock in
//! `shared_info`: pure arithmetic over the shared pages, so the version
//! protocol and the scaling are testable on the host.

use core::sync::atomic::{fence, Ordering};
use hypercall::abi::shared_info::{SharedInfo, VcpuTimeInfo};

/// A consistent copy of one vCPU's time parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PvClock {
    pub tsc_timestamp: u64,
    pub system_time: u64,
    pub mul: u32,
    pub shift: i8,
}

/// Scales a TSC delta to nanoseconds the way Xen defines it:
/// `((delta << shift) * mul) >> 32`, with a negative shift shifting right.
pub fn scale_delta(delta: u64, mul: u32, shift: i8) -> u64 {
    let d = if shift >= 0 { delta << shift } else { delta >> shift.unsigned_abs() };
    ((u128::from(d) * u128::from(mul)) >> 32) as u64
}

impl PvClock {
    /// Reads the parameters under Xen's version protocol: an odd version
    /// means an update is in progress, a changed version means a torn read.
    pub fn read(t: &VcpuTimeInfo) -> Self {
        loop {
            let v1 = t.version.load(Ordering::Acquire);
            if v1 & 1 != 0 {
                core::hint::spin_loop();
                continue;
            }
            let snap = PvClock {
                tsc_timestamp: t.tsc_timestamp.load(Ordering::Relaxed),
                system_time: t.system_time.load(Ordering::Relaxed),
                mul: t.tsc_to_system_mul.load(Ordering::Relaxed),
                shift: t.tsc_shift.load(Ordering::Relaxed),
            };
            fence(Ordering::Acquire);
            if t.version.load(Ordering::Relaxed) == v1 {
                return snap;
            }
        }
    }

    /// System time (ns) at TSC value `tsc`.
    pub fn ns_at(&self, tsc: u64) -> u64 {
        self.system_time.wrapping_add(scale_delta(
            tsc.wrapping_sub(self.tsc_timestamp),
            self.mul,
            self.shift,
        ))
    }

    /// The TSC frequency these parameters imply, in Hz.
    pub fn tsc_hz(&self) -> u64 {
        if self.mul == 0 {
            return 0;
        }
        let hz = (1_000_000_000u128 << 32) / u128::from(self.mul);
        let hz = if self.shift >= 0 { hz >> self.shift } else { hz << self.shift.unsigned_abs() };
        hz as u64
    }
}

/// Wall-clock time at system time 0, from `shared_info` (`wc_*`), under
/// its own version protocol.
pub fn wallclock_base(s: &SharedInfo) -> (u64, u32) {
    loop {
        let v1 = s.wc_version.load(Ordering::Acquire);
        if v1 & 1 != 0 {
            core::hint::spin_loop();
            continue;
        }
        let sec = u64::from(s.wc_sec.load(Ordering::Relaxed))
            | (u64::from(s.wc_sec_hi.load(Ordering::Relaxed)) << 32);
        let nsec = s.wc_nsec.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if s.wc_version.load(Ordering::Relaxed) == v1 {
            return (sec, nsec);
        }
    }
}

/// A UTC calendar time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utc {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl Utc {
    /// Converts seconds since the Unix epoch (Howard Hinnant's civil-from-days).
    pub fn from_unix(secs: u64) -> Self {
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Utc {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem / 60 % 60) as u32,
            second: (rem % 60) as u32,
        }
    }
}

impl core::fmt::Display for Utc {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypercall::abi::shared_info::VcpuInfo;

    #[test]
    fn scaling_matches_xen_definition() {
        // 2 GHz TSC: mul = 2^31 (0.5 ns per tick), shift 0.
        assert_eq!(scale_delta(2_000, 1 << 31, 0), 1_000);
        // Shifts apply before the multiply.
        assert_eq!(scale_delta(1_000, 1 << 31, 1), 1_000);
        assert_eq!(scale_delta(4_000, 1 << 31, -1), 1_000);
        // No overflow for a day's worth of ticks at 4 GHz with a large mul.
        let day = 4_000_000_000u64 * 86_400;
        assert_eq!(
            scale_delta(day, u32::MAX, 0),
            ((u128::from(day) * u128::from(u32::MAX)) >> 32) as u64
        );
    }

    #[test]
    fn frequency_from_parameters() {
        let c = PvClock { tsc_timestamp: 0, system_time: 0, mul: 1 << 31, shift: 0 };
        assert_eq!(c.tsc_hz(), 2_000_000_000);
        let c = PvClock { mul: 1 << 31, shift: -1, ..c };
        assert_eq!(c.tsc_hz(), 4_000_000_000);
        let c = PvClock { mul: 0, ..c };
        assert_eq!(c.tsc_hz(), 0);
    }

    #[test]
    fn read_returns_a_consistent_snapshot_and_waits_out_odd_versions() {
        let v = VcpuInfo::zeroed();
        let t = &v.time;
        t.tsc_timestamp.store(100, Ordering::Relaxed);
        t.system_time.store(5_000, Ordering::Relaxed);
        t.tsc_to_system_mul.store(1 << 31, Ordering::Relaxed);
        t.version.store(2, Ordering::Release);
        let c = PvClock::read(t);
        assert_eq!(c.ns_at(300), 5_100);

        // A writer that finishes its update while the reader spins.
        t.version.store(3, Ordering::Release);
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(20));
                t.system_time.store(9_000, Ordering::Relaxed);
                t.version.store(4, Ordering::Release);
            });
            let c = PvClock::read(t);
            assert_eq!(c.system_time, 9_000);
        });
    }

    #[test]
    fn ns_at_wraps_like_xen() {
        let c = PvClock { tsc_timestamp: u64::MAX - 9, system_time: 0, mul: 1 << 31, shift: 1 };
        // 20 ticks after the timestamp, across the u64 wrap.
        assert_eq!(c.ns_at(10), 20);
    }

    #[test]
    fn calendar_conversion() {
        assert_eq!(Utc::from_unix(0).to_string(), "1970-01-01 00:00:00 UTC");
        assert_eq!(Utc::from_unix(951_782_400).to_string(), "2000-02-29 00:00:00 UTC");
        assert_eq!(Utc::from_unix(1_795_305_600 + 3661).to_string(), "2026-11-22 01:01:01 UTC");
    }

    #[test]
    fn wallclock_combines_high_and_low_seconds() {
        let s = SharedInfo::zeroed();
        s.wc_sec.store(5, Ordering::Relaxed);
        s.wc_sec_hi.store(1, Ordering::Relaxed);
        s.wc_nsec.store(7, Ordering::Relaxed);
        assert_eq!(wallclock_base(&s), ((1 << 32) + 5, 7));
    }
}
