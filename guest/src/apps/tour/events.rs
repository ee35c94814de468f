//! Step 4: event channels as interrupts, the timer VIRQ, and blocking
//! instead of `hlt` (docs/events.md).

use super::{evidence, say, Shown, StepResult};
use core::sync::atomic::{AtomicU64, Ordering};
use hypercall::abi::vcpu::runstate;
use hypercall::EvtchnPort;
use kernel::events::{self, IrqGuard};
use kernel::timer;

const STEP: &str = "events";

static RUNS: AtomicU64 = AtomicU64::new(0);

fn on_event(_: EvtchnPort, _: usize) {
    RUNS.fetch_add(1, Ordering::SeqCst);
}

pub fn run() -> StepResult {
    say!("A native kernel takes interrupts through its IDT. This guest takes event");
    say!("channels: Xen sets a pending bit, and if the guest's mask allows, makes an");
    say!("upcall to the entry point the guest registered (callback_op).");
    if platform::is_pvh() {
        say!("(PVH: the upcall is an interrupt on a vector of the guest's own IDT, 0xf3,");
        say!("named with HVM_PARAM_CALLBACK_IRQ; the mask is the real interrupt flag.)");
    }
    let port = events::bind_ipi(on_event, 0).map_err(|e| alloc::format!("bind_ipi: {e}"))?;
    let before = RUNS.load(Ordering::SeqCst);
    events::send(port).map_err(|e| alloc::format!("send: {e}"))?;
    let once = RUNS.load(Ordering::SeqCst) - before;
    evidence!(STEP, "bound an IPI channel to ourselves: port {}; one EVTCHNOP_send ran the handler {once} time(s) (delivered on the way back from the hypercall)", port.0);
    let (sent, while_masked, after) = {
        let guard = IrqGuard::new();
        for _ in 0..3 {
            let _ = events::send(port);
        }
        let pending = events::is_pending(port);
        let masked_runs = RUNS.load(Ordering::SeqCst) - before - once;
        drop(guard);
        (pending, masked_runs, RUNS.load(Ordering::SeqCst) - before - once)
    };
    evidence!(STEP, "3 sends with upcalls masked: port pending {sent}, handler ran {while_masked} times while masked, {after} time(s) once unmasked: an event is a bit, not a queue");
    let _ = events::close(port);

    say!("Time comes from VIRQ_TIMER: a one-shot timer (set_singleshot_timer) raises it.");
    let block = if platform::is_pvh() {
        say!("To wait, the guest halts (sti; hlt: under PVH hlt exits to Xen, which takes");
        say!("the vCPU off the CPU until an event is pending, as SCHEDOP_block does for PV).");
        "sti; hlt (PVH's SCHEDOP_block)"
    } else {
        say!("To wait, the guest does not hlt (it traps: step 1); it blocks (SCHEDOP_block):");
        say!("Xen takes the vCPU off the CPU until an event is pending.");
        "SCHEDOP_block"
    };
    let (virqs0, _) = timer::virqs();
    let blocks0 = timer::blocks();
    let rs0 = hypercall::ops::vcpu::runstate(0).map_err(|e| alloc::format!("runstate: {e}"))?;
    timer::sleep_ns(20_000_000);
    let rs1 = hypercall::ops::vcpu::runstate(0).map_err(|e| alloc::format!("runstate: {e}"))?;
    let (virqs1, _) = timer::virqs();
    let blocked_ms = (rs1.time[runstate::BLOCKED] - rs0.time[runstate::BLOCKED]) / 1_000_000;
    let running_us = (rs1.time[runstate::RUNNING] - rs0.time[runstate::RUNNING]) / 1_000;
    evidence!(
        STEP,
        "a 20 ms sleep: {} VIRQ_TIMER event(s) on port {}, {} {block}(s); runstate: blocked {blocked_ms} ms, running {running_us} us",
        virqs1 - virqs0,
        timer::init().map(|p| p.0).unwrap_or(0),
        timer::blocks() - blocks0
    );
    evidence!(
        STEP,
        "ports bound now: {}, upcalls taken since boot: {}",
        events::bound_ports(),
        events::upcalls()
    );
    Ok(Shown::Shown)
}
