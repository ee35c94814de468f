//! The PV clock and the wall clock.

use super::{fail, note, Suite};
use hypercall::ops::{event_channel, sched_op};
use hypercall::DomId;
use kernel::time::{wallclock_base, PvClock, Utc};

pub fn run(s: &mut Suite) {
    s.check("clock.tsc_frequency", |d| {
        let c = PvClock::read(&platform::vcpu_info().time);
        let mhz = c.tsc_hz() / 1_000_000;
        note!(d, "{mhz} MHz (mul {:#x} shift {})", c.mul, c.shift);
        (10..20_000).contains(&mhz)
    });

    s.check("clock.monotonic", |d| {
        const READS: u64 = 10_000;
        let t0 = platform::now_ns();
        let mut last = t0;
        for i in 0..READS {
            let t = platform::now_ns();
            if t < last {
                fail!(d, "read {i}: {t} after {last}");
            }
            last = t;
        }
        note!(d, "{READS} reads, {} ns each", (last - t0) / READS);
        last > t0
    });

    s.check("clock.wallclock", |d| {
        let (sec, _) = wallclock_base(platform::shared_info());
        let now = Utc::from_unix(sec + platform::now_ns() / 1_000_000_000);
        note!(d, "{now}");
        (2020..2100).contains(&now.year)
    });

    s.check("clock.poll_deadline_20ms", |d| {
        // A fresh port nobody signals: only the deadline ends the wait.
        let port = match event_channel::alloc_unbound(DomId::SELF) {
            Ok(p) => p,
            Err(e) => fail!(d, "alloc_unbound: {e}"),
        };
        // Xen may end a poll early (any event marked pending for this vCPU
        // kicks it, masked or not), so a waiter polls until its deadline;
        // with upcalls unmasked it would end at once on any pending upcall,
        // so this runs masked, as a driver waiting on its own port would.
        let masked = kernel::events::IrqGuard::new();
        let t0 = platform::now_ns();
        let deadline = t0 + 20_000_000;
        let mut polls = 0;
        let mut r = Ok(());
        while platform::now_ns() < deadline && r.is_ok() && polls < 10_000 {
            r = sched_op::poll(&[port], deadline);
            polls += 1;
        }
        let waited = platform::now_ns() - t0;
        let pending = kernel::events::is_pending(port);
        drop(masked);
        let _ = event_channel::close(port);
        note!(d, "waited {} us in {polls} polls; port pending: {pending}", waited / 1000);
        // It blocked (a handful of wake-ups, not a spin), nothing fired, and
        // it did not end before the deadline. The upper bound is only a
        // hang guard: how late the vCPU runs again is the host's doing.
        r.is_ok() && !pending && polls < 100 && (20_000_000..30_000_000_000).contains(&waited)
    });
}
