//! `app=bench`: hypercall latency (`bench.suite=hypercall`, the default,
//! `run.rs`) or what memory virtualization costs in the mode the guest runs
//! in (`bench.suite=paging`, `paging.rs`), measured the same way for every
//! operation: warm-up, then many iterations each timed with a serialised
//! TSC read (`lfence; rdtsc` ... `rdtscp; lfence`), the timer's own cost
//! measured and subtracted, and min / median / p99 / max reported in cycles
//! and ns (TSC frequency from the PV clock).
//!
//! Each result is one line a program can read:
//! `BENCH name=N iters=I per=K cycles=min/median/p99/max ns=min/median/p99/max`
//! (`per=K`: figures are per item of a batch of K).

pub mod stats;

#[cfg(target_os = "none")]
mod paging;
#[cfg(target_os = "none")]
mod run;
#[cfg(target_os = "none")]
pub use run::run;
