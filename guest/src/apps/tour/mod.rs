//! `app=tour`: one small example of each mechanism docs/README.md lists,
//! in the chapters' order, each narrated and with its evidence printed
//! (frame numbers, ports, grant references, XenStore keys, pages
//! ballooned). Run it with `trace=hypercalls` to see the calls behind
//! each step.
//!
//! Every step prints `tour: == N/10 NAME: TITLE ==`, its narration
//! (`tour:   ...`) and evidence (`tour: [NAME] ...`), and ends with
//! `tour: -- N/10 NAME: shown` or `... skipped: WHY`; the run ends with
//! `tour: complete: S of 10 shown, K skipped`. tests/tests/tour.rs checks
//! all of it.

mod balloon;
mod events;
mod grants;
mod hypercalls;
mod measure;
mod memory;
mod rings;
mod sched;
mod virt;
mod xenstore;

use super::{AppError, AppResult};
use kernel::cmdline::Cmdline;
use kernel::kprintln;

/// What a step showed.
pub enum Shown {
    Shown,
    /// Not possible here (PVH, no XenStore...): why.
    Skipped(&'static str),
}

/// A step's failure: what went wrong (the tour stops the domain as crashed).
pub type StepResult = Result<Shown, alloc::string::String>;

struct Step {
    name: &'static str,
    title: &'static str,
    chapter: &'static str,
    run: fn() -> StepResult,
}

const STEPS: [Step; 10] = [
    Step {
        name: "virt",
        title: "why x86 could not be virtualized by trap-and-emulate",
        chapter: "virtualizability.md",
        run: virt::run,
    },
    Step {
        name: "hypercalls",
        title: "privileged operations become hypercalls",
        chapter: "hypercalls.md",
        run: hypercalls::run,
    },
    Step {
        name: "memory",
        title: "pseudo-physical and machine frames, page tables Xen checks",
        chapter: "memory.md",
        run: memory::run,
    },
    Step {
        name: "events",
        title: "event channels are the interrupts",
        chapter: "events.md",
        run: events::run,
    },
    Step {
        name: "grants",
        title: "grant tables: sharing a page, and revoking it",
        chapter: "grants.md",
        run: grants::run,
    },
    Step {
        name: "xenstore",
        title: "XenStore, the configuration tree",
        chapter: "xenstore.md",
        run: xenstore::run,
    },
    Step {
        name: "rings",
        title: "shared rings: producer, consumer, event suppression",
        chapter: "rings.md",
        run: rings::run,
    },
    Step {
        name: "balloon",
        title: "ballooning: giving memory back to Xen",
        chapter: "balloon.md",
        run: balloon::run,
    },
    Step {
        name: "sched",
        title: "the scheduler's view: runstate",
        chapter: "scheduler.md",
        run: sched::run,
    },
    Step {
        name: "measure",
        title: "measuring what a hypercall costs",
        chapter: "measuring.md",
        run: measure::run,
    },
];

/// A line of narration.
macro_rules! say {
    ($($arg:tt)*) => { $crate::apps::tour::say_line(format_args!($($arg)*)) };
}
/// A line of evidence for step `$step`.
macro_rules! evidence {
    ($step:expr, $($arg:tt)*) => {
        $crate::apps::tour::evidence_line($step, format_args!($($arg)*))
    };
}
pub(crate) use {evidence, say};

/// `say!`'s line. The prefix is added here, out of line, so that each of
/// the ~160 call sites builds one `Arguments`, not two (issue 17's size
/// goal: 5 KiB).
#[inline(never)]
pub(crate) fn say_line(args: core::fmt::Arguments<'_>) {
    kprintln!("tour:   {args}");
}

/// `evidence!`'s line (out of line like [`say_line`]).
#[inline(never)]
pub(crate) fn evidence_line(step: &str, args: core::fmt::Arguments<'_>) {
    kprintln!("tour: [{step}] {args}");
}

pub fn run(_: &Cmdline<'_>) -> AppResult {
    kprintln!(
        "tour: a guided run through {} mechanisms of a Xen PV guest; each step names its chapter in docs/",
        STEPS.len()
    );
    let (mut shown, mut skipped) = (0, 0);
    for (i, step) in STEPS.iter().enumerate() {
        let n = i + 1;
        kprintln!(
            "tour: == {n}/{} {}: {} (docs/{}) ==",
            STEPS.len(),
            step.name,
            step.title,
            step.chapter
        );
        match (step.run)() {
            Ok(Shown::Shown) => {
                shown += 1;
                kprintln!("tour: -- {n}/{} {}: shown", STEPS.len(), step.name);
            }
            Ok(Shown::Skipped(why)) => {
                skipped += 1;
                kprintln!("tour: -- {n}/{} {}: skipped: {why}", STEPS.len(), step.name);
            }
            Err(e) => {
                kprintln!("tour: -- {n}/{} {}: FAILED: {e}", STEPS.len(), step.name);
                return Err(AppError::TestsFailed { failed: 1, passed: shown });
            }
        }
    }
    kprintln!("tour: complete: {shown} of {} shown, {skipped} skipped", STEPS.len());
    Ok(())
}

/// The median of `n` TSC-timed runs of `f`, in cycles, less the median
/// of the timer pair on its own ([`timer_cycles`]).
pub fn median_cycles(n: usize, f: impl FnMut()) -> u64 {
    raw_median(n, f).saturating_sub(timer_cycles())
}

/// What reading the TSC around nothing costs: a few dozen cycles with
/// `tsc_mode = "native"`, thousands when Xen emulates `rdtsc` (the
/// default for a PV guest on a host whose TSC Xen does not trust, as
/// under QEMU: docs/measuring.md).
pub fn timer_cycles() -> u64 {
    static T: spin::Once<u64> = spin::Once::new();
    *T.call_once(|| raw_median(301, || {}))
}

/// `lfence; rdtsc` on both sides: `rdtscp` (which `platform::tsc_end`
/// uses) faults in a PVH guest whose TSC Xen emulates (seen on Xen 4.17
/// with the default `tsc_mode`).
fn raw_median(n: usize, mut f: impl FnMut()) -> u64 {
    let mut v = alloc::vec::Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = platform::rdtsc();
        f();
        v.push(platform::rdtsc().wrapping_sub(t0));
    }
    v.sort_unstable();
    v[v.len() / 2]
}
