//! Timers and sleeping on real Xen: accuracy, a storm, and an idle guest
//! that costs (almost) no CPU.

use super::{fail, note, Suite};
use crate::cmdline::Cmdline;
use crate::{platform, timer};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use hypercall::abi::vcpu::runstate;
use hypercall::ops::vcpu;

const STORM: usize = 100;
static FIRED_AT: [AtomicU64; STORM] = [const { AtomicU64::new(0) }; STORM];
static FIRED_COUNT: [AtomicU64; STORM] = [const { AtomicU64::new(0) }; STORM];
static ORDER: [AtomicUsize; STORM] = [const { AtomicUsize::new(usize::MAX) }; STORM];
static NEXT: AtomicUsize = AtomicUsize::new(0);

fn storm_fired(i: usize) {
    FIRED_AT[i].store(platform::now_ns(), Ordering::SeqCst);
    FIRED_COUNT[i].fetch_add(1, Ordering::SeqCst);
    let at = NEXT.fetch_add(1, Ordering::SeqCst);
    if at < STORM {
        ORDER[at].store(i, Ordering::SeqCst);
    }
}

pub fn run(s: &mut Suite, cmd: &Cmdline<'_>) {
    s.check("timer.sleep_10ms", |d| {
        let mut took = [0u64; 10];
        for t in &mut took {
            let t0 = platform::now_ns();
            timer::sleep_ns(10_000_000);
            *t = platform::now_ns() - t0;
        }
        took.sort_unstable();
        note!(
            d,
            "10 sleeps: min {} us, median {} us, max {} us (never early; median within +40 ms, max within +500 ms)",
            took[0] / 1000,
            took[5] / 1000,
            took[9] / 1000
        );
        // Never early. Lateness is scheduling: under software emulation a
        // domU waits behind dom0's vCPUs and the host's other processes,
        // so the bounds are loose, but they still catch a timer that fires
        // on a coarse tick, late by a period, or not at all.
        took[0] >= 10_000_000 && took[5] <= 50_000_000 && took[9] <= 510_000_000
    });

    s.check("timer.storm_100_in_order_exactly_once", |d| {
        NEXT.store(0, Ordering::SeqCst);
        let base = platform::now_ns() + 1_000_000;
        let mut deadlines = [0u64; STORM];
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for (i, dl) in deadlines.iter_mut().enumerate() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *dl = base + x % 50_000_000;
            FIRED_COUNT[i].store(0, Ordering::SeqCst);
            if let Err(e) = timer::add(*dl, storm_fired, i) {
                fail!(d, "timer {i}: {e:?}");
            }
        }
        let all = timer::wait_until(base + 2_000_000_000, || NEXT.load(Ordering::SeqCst) >= STORM);
        if !all {
            fail!(d, "only {} of {STORM} fired within 2 s", NEXT.load(Ordering::SeqCst));
        }
        timer::sleep_ns(10_000_000);
        let mut worst_late = 0;
        for i in 0..STORM {
            let fired = FIRED_AT[i].load(Ordering::SeqCst);
            if FIRED_COUNT[i].load(Ordering::SeqCst) != 1 {
                fail!(d, "timer {i} fired {} times", FIRED_COUNT[i].load(Ordering::SeqCst));
            }
            if fired < deadlines[i] {
                fail!(d, "timer {i} fired {} ns early", deadlines[i] - fired);
            }
            worst_late = worst_late.max(fired - deadlines[i]);
        }
        for w in ORDER.windows(2) {
            let (a, b) = (w[0].load(Ordering::SeqCst), w[1].load(Ordering::SeqCst));
            if deadlines[a] > deadlines[b] {
                fail!(d, "timer {a} (due {}) fired before timer {b} (due {})", deadlines[a], deadlines[b]);
            }
        }
        let (fired, programmed, queued) = timer::stats();
        note!(
            d,
            "worst lateness {} us; in all {fired} fired, Xen timer set {programmed} times, {queued} queued",
            worst_late / 1000
        );
        true
    });

    let idle_secs: u64 = cmd.get("selftest.idle_secs").and_then(|v| v.parse().ok()).unwrap_or(5);
    s.check("timer.idle_costs_no_cpu", |d| {
        let (Ok(before), t0) = (vcpu::runstate(0), platform::now_ns()) else {
            fail!(d, "runstate unavailable");
        };
        timer::sleep_ns(idle_secs * 1_000_000_000);
        let (Ok(after), t1) = (vcpu::runstate(0), platform::now_ns()) else {
            fail!(d, "runstate unavailable");
        };
        let running = after.time[runstate::RUNNING] - before.time[runstate::RUNNING];
        let blocked = after.time[runstate::BLOCKED] - before.time[runstate::BLOCKED];
        let wall = t1 - t0;
        let permille = running * 1000 / wall.max(1);
        note!(
            d,
            "{idle_secs} s idle: running {} ms ({}.{}%), blocked {} ms",
            running / 1_000_000,
            permille / 10,
            permille % 10,
            blocked / 1_000_000
        );
        // Under 2% of the time on the CPU while asleep.
        permille < 20
    });
}
