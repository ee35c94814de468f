//! `app=spin`: burns the CPU for `spin.secs` seconds of wall-clock time
//! and reports the share of it the vCPU actually ran, from its runstate
//! (`VCPUOP_get_runstate_info`): what Xen's scheduler gave it. Two of them
//! pinned to one CPU with different weights or a cap are the scheduler
//! demo (`cargo xtask demo sched`, docs/scheduler.md).
//!
//! With `spin.tick_us=N` a timer fires every N µs while it spins: each
//! expiry is an event injected into a vCPU that is busy reading its clock
//! (under an emulated TSC, one exit per read), the stress that
//! reproduces the PVH triple fault of docs/pvh.md in minutes rather than
//! hours of network load.
//!
//! With `spin.sync=1` it writes `data/spin-ready` and waits (up to 120 s)
//! for dom0 to write `data/spin-go`, so that guests started one after the
//! other spin over the same interval.

use super::{AppError, AppResult};
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;
use hypercall::abi::vcpu::{runstate, VcpuRunstateInfo};
use hypercall::ops::vcpu;
use kernel::cmdline::Cmdline;
use kernel::{kprintln, xenbus};
use xenstore_client::Store;

fn now_rs() -> Result<VcpuRunstateInfo, AppError> {
    vcpu::runstate(0).map_err(|_| AppError::BadSetting("VCPUOP_get_runstate_info refused"))
}

/// Waits for dom0's go (`data/spin-go`), having said we are ready.
fn sync() -> AppResult {
    const TOKEN: &str = "spin-go";
    let r = xenbus::with(|bus| -> Result<(), xenstore_client::Error> {
        bus.watch("data/spin-go", TOKEN)?;
        bus.xs.write("data/spin-ready", b"1")?;
        let deadline = bus.deadline(Duration::from_secs(120));
        loop {
            if bus.xs.read_opt("data/spin-go")?.is_some() {
                return Ok(());
            }
            bus.next_event_for(TOKEN, Some(deadline))?;
        }
    });
    match r {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => {
            Err(AppError::Setting(alloc::format!("spin: waiting for data/spin-go: {e:?}")))
        }
        None => Err(AppError::BadSetting("spin.sync=1 needs XenStore")),
    }
}

static TICKS: AtomicU64 = AtomicU64::new(0);
static TICK_NS: AtomicU64 = AtomicU64::new(0);

/// Counts itself and arms the next tick.
fn tick(_: usize) {
    TICKS.fetch_add(1, Ordering::Relaxed);
    let next = platform::now_ns() + TICK_NS.load(Ordering::Relaxed);
    let _ = kernel::timer::add(next, tick, 0);
}

pub fn run(cmd: &Cmdline<'_>) -> AppResult {
    let secs = cmd.number("spin.secs").unwrap_or(20);
    if let Some(us) = cmd.number("spin.tick_us") {
        if us == 0 {
            return Err(AppError::BadSetting("spin.tick_us must be at least 1"));
        }
        TICK_NS.store(us * 1000, Ordering::Relaxed);
        kernel::timer::add(platform::now_ns() + us * 1000, tick, 0)
            .map_err(|_| AppError::BadSetting("spin.tick_us: the timer queue is full"))?;
    }
    if cmd.number("spin.sync") == Some(1) {
        kprintln!("spin: ready; waiting for data/spin-go");
        sync()?;
    }
    kprintln!("spin: burning the CPU for {secs} s of wall-clock time");
    let start_rs = now_rs()?;
    let t0 = platform::now_ns();
    let end = t0 + secs * 1_000_000_000;
    let mut last = (t0, start_rs);
    let mut second = 0;
    loop {
        let now = platform::now_ns();
        if now >= end {
            break;
        }
        if now - last.0 >= 1_000_000_000 {
            let rs = now_rs()?;
            second += 1;
            let ran = rs.time[runstate::RUNNING] - last.1.time[runstate::RUNNING];
            kprintln!(
                "spin: second {second}: ran {} ms of {} ms, {} ticks",
                ran / 1_000_000,
                (now - last.0) / 1_000_000,
                TICKS.load(Ordering::Relaxed)
            );
            last = (now, rs);
        }
        core::hint::spin_loop();
    }
    let end_rs = now_rs()?;
    let wall = platform::now_ns() - t0;
    let d = |i: usize| end_rs.time[i] - start_rs.time[i];
    let permille = d(runstate::RUNNING) * 1000 / wall.max(1);
    kprintln!(
        "spin: result wall_ms={} running_ms={} runnable_ms={} blocked_ms={} offline_ms={} share_permille={permille}",
        wall / 1_000_000,
        d(runstate::RUNNING) / 1_000_000,
        d(runstate::RUNNABLE) / 1_000_000,
        d(runstate::BLOCKED) / 1_000_000,
        d(runstate::OFFLINE) / 1_000_000
    );
    Ok(())
}
