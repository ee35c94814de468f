//! Step 9: the scheduler, seen from inside: the vCPU's runstate while it
//! spins, sleeps and yields (docs/scheduler.md).

use super::{evidence, say, Shown, StepResult};
use alloc::format;
use hypercall::abi::vcpu::{runstate, VcpuRunstateInfo};
use hypercall::ops::{sched_op, vcpu};
use kernel::timer;

const STEP: &str = "sched";

fn rs() -> Result<VcpuRunstateInfo, alloc::string::String> {
    vcpu::runstate(0).map_err(|e| format!("runstate: {e}"))
}

fn delta_ms(a: &VcpuRunstateInfo, b: &VcpuRunstateInfo, i: usize) -> u64 {
    (b.time[i] - a.time[i]) / 1_000_000
}

pub fn run() -> StepResult {
    say!("A native kernel schedules its threads on CPUs it owns. Xen schedules vCPUs on");
    say!("physical CPUs; its credit scheduler gives each domain CPU time in proportion to");
    say!("its weight (default 256) and never more than its cap. The guest sees the");
    say!("result in its runstate: ns spent running, runnable (waiting for a CPU),");
    say!("blocked and offline (VCPUOP_get_runstate_info).");
    let a = rs()?;
    let t0 = platform::now_ns();
    while platform::now_ns() - t0 < 200_000_000 {
        core::hint::spin_loop();
    }
    let b = rs()?;
    let wall = (platform::now_ns() - t0) / 1_000_000;
    let run_ms = delta_ms(&a, &b, runstate::RUNNING);
    evidence!(
        STEP,
        "spinning {wall} ms: running {run_ms} ms, runnable {} ms (another vCPU had this CPU): a {}% share",
        delta_ms(&a, &b, runstate::RUNNABLE),
        run_ms * 100 / wall.max(1)
    );
    timer::sleep_ns(100_000_000);
    let c = rs()?;
    evidence!(
        STEP,
        "sleeping 100 ms (SCHEDOP_block): blocked {} ms, running {} ms",
        delta_ms(&b, &c, runstate::BLOCKED),
        delta_ms(&b, &c, runstate::RUNNING)
    );
    for _ in 0..10 {
        let _ = sched_op::yield_now();
    }
    let d = rs()?;
    evidence!(
        STEP,
        "10 yields (SCHEDOP_yield): running {} us, runnable {} us",
        (d.time[runstate::RUNNING] - c.time[runstate::RUNNING]) / 1000,
        (d.time[runstate::RUNNABLE] - c.time[runstate::RUNNABLE]) / 1000
    );
    say!("`cargo xtask demo sched` runs two guests that spin on one CPU with weights");
    say!("256 and 512, then one capped at 25%, and compares their runstate shares with");
    say!("what the weights and the cap promise.");
    Ok(Shown::Shown)
}
