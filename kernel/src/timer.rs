//! One-shot timers on Xen's per-vCPU single-shot timer (`VIRQ_TIMER`),
//! sleeping, and blocking until something happens.

use crate::events::{self, EventError, IrqGuard, IrqLock};
use crate::platform;
use crate::timer_queue::{QueueFull, TimerFn, TimerId, TimerQueue};
use core::sync::atomic::{AtomicU64, Ordering};
use hypercall::abi::event_channel::virq;
use hypercall::ops::{sched_op, vcpu};
use hypercall::EvtchnPort;
use spin::Once;

/// Timers that can be armed at once.
pub const CAPACITY: usize = 128;

static TIMERS: IrqLock<TimerQueue<CAPACITY>> = IrqLock::new(TimerQueue::new());
static PORT: Once<EvtchnPort> = Once::new();
static FIRED: AtomicU64 = AtomicU64::new(0);
static PROGRAMMED: AtomicU64 = AtomicU64::new(0);
static BLOCKS: AtomicU64 = AtomicU64::new(0);

/// Binds `VIRQ_TIMER` and stops the periodic tick Xen starts every PV vCPU
/// with, so an idle guest is woken only by the deadlines it asked for.
pub fn init() -> Result<EvtchnPort, EventError> {
    if let Some(&p) = PORT.get() {
        return Ok(p);
    }
    let _ = vcpu::stop_periodic_timer(0);
    let port = events::bind_virq(virq::TIMER, on_timer_virq, 0)?;
    PORT.call_once(|| port);
    Ok(port)
}

fn on_timer_virq(_: EvtchnPort, _: usize) {
    loop {
        let due = TIMERS.lock().pop_due(platform::now_ns());
        match due {
            Some(t) => {
                FIRED.fetch_add(1, Ordering::Relaxed);
                (t.func)(t.data);
            }
            None => break,
        }
    }
    reprogram();
}

/// Points Xen's single-shot timer at the earliest deadline.
fn reprogram() {
    let next = TIMERS.lock().next_deadline();
    if let Some(deadline) = next {
        PROGRAMMED.fetch_add(1, Ordering::Relaxed);
        // A deadline already past fires at once (flags 0), which is what we want.
        let _ = vcpu::set_singleshot_timer(0, deadline);
    }
}

/// Runs `func(data)` from the timer upcall at system time `deadline_ns`.
pub fn add(deadline_ns: u64, func: TimerFn, data: usize) -> Result<TimerId, QueueFull> {
    let (id, earliest) = {
        let mut q = TIMERS.lock();
        let id = q.add(deadline_ns, func, data)?;
        (id, q.next_deadline() == Some(deadline_ns))
    };
    if earliest {
        reprogram();
    }
    Ok(id)
}

/// Removes a timer that has not fired yet.
pub fn cancel(id: TimerId) -> bool {
    TIMERS.lock().cancel(id)
}

/// Timers fired so far, how often Xen's timer was set, and timers queued now.
pub fn stats() -> (u64, u64, usize) {
    (FIRED.load(Ordering::Relaxed), PROGRAMMED.load(Ordering::Relaxed), TIMERS.lock().len())
}

fn wake_only(_: usize) {}

/// Blocks until `cond()` holds, re-checking after every event. The check
/// runs with upcalls masked and `SCHEDOP_block` unmasks them atomically, so
/// an event between the check and the block is never missed.
///
/// Must not be called from an event handler (it would let upcalls nest).
pub fn block_until(mut cond: impl FnMut() -> bool) {
    assert!(!events::in_upcall(), "block_until called from an event handler");
    loop {
        let _masked = IrqGuard::new();
        if cond() {
            return;
        }
        // Xen unmasks, blocks if nothing is pending, and delivers the
        // upcall before this returns.
        BLOCKS.fetch_add(1, Ordering::Relaxed);
        let _ = sched_op::block();
    }
}

/// `SCHEDOP_block` calls so far (from [`block_until`]).
pub fn blocks() -> u64 {
    BLOCKS.load(Ordering::Relaxed)
}

/// Blocks until `cond()` holds or system time `deadline_ns` passes;
/// returns `cond()`.
pub fn wait_until(deadline_ns: u64, mut cond: impl FnMut() -> bool) -> bool {
    match add(deadline_ns, wake_only, 0) {
        Ok(id) => {
            block_until(|| cond() || platform::now_ns() >= deadline_ns);
            cancel(id);
        }
        Err(QueueFull) => {
            log::warn!("timer queue full: waiting by yielding");
            while !cond() && platform::now_ns() < deadline_ns {
                let _ = sched_op::yield_now();
            }
        }
    }
    cond()
}

/// Sleeps until system time `deadline_ns`.
pub fn sleep_until(deadline_ns: u64) {
    wait_until(deadline_ns, || false);
}

/// Sleeps for `ns` nanoseconds.
pub fn sleep_ns(ns: u64) {
    sleep_until(platform::now_ns().saturating_add(ns));
}
