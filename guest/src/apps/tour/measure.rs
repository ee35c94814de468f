//! Step 10: what operations cost, measured the way app=bench does, in
//! miniature (docs/measuring.md).

use super::{evidence, median_cycles, say, Shown, StepResult};
use alloc::vec::Vec;
use hypercall::abi::mmu::MulticallEntry;
use hypercall::ops::{sched_op, version};

const STEP: &str = "measure";

#[inline(never)]
fn noop(x: u64) -> u64 {
    core::hint::black_box(x) + 1
}

pub fn run() -> StepResult {
    say!("Every mechanism above costs guest-to-Xen transitions. The TSC, read with");
    say!("lfence/rdtscp around an operation, gives its cost in cycles (median of many).");
    let call = median_cycles(300, || {
        core::hint::black_box(noop(1));
    });
    let hc = median_cycles(300, || {
        let _ = version::version();
    });
    let yld = median_cycles(100, || {
        let _ = sched_op::yield_now();
    });
    evidence!(
        STEP,
        "function call {call} cycles; null hypercall (xen_version) {hc}; sched_op(yield) {yld}"
    );
    if !platform::is_pvh() {
        let separate = median_cycles(50, || {
            for _ in 0..32 {
                let _ = version::version();
            }
        });
        let mut entries: Vec<MulticallEntry> = alloc::vec![MulticallEntry::default(); 32];
        let batched = median_cycles(50, || {
            let _ = platform::pv::bench::multicall_xen_version(&mut entries);
        });
        evidence!(
            STEP,
            "32 xen_version calls: {separate} cycles one by one, {batched} in one multicall ({}% of separate): batching saves transitions",
            batched * 100 / separate.max(1)
        );
    }
    let brand = platform::cpu_brand();
    evidence!(STEP, "CPU: {}; reading the TSC twice costs {} cycles here (taken off every figure above; thousands means Xen emulates rdtsc: tsc_mode is not native)", brand.as_str(), super::timer_cycles());
    say!("A hypercall is a syscall into Xen; with XPTI (Xen's Meltdown mitigation for");
    say!("64-bit PV guests on affected Intel CPUs) every entry and exit also switches page");
    say!("tables and flushes the TLB, so each transition costs many times more and");
    say!("batching matters more. Xen's boot log says whether XPTI is on; app=bench and");
    say!("`cargo xtask bench hypercall` measure it all against a Linux PV guest.");
    Ok(Shown::Shown)
}
