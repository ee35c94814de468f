//! One-shot timers on Xen's per-vCPU single-shot timer (`VIRQ_TIMER`),
//! sleeping, and blocking until something happens.
//!
//! Xen's timer is kept pointed at the earliest queued deadline, and only
//! then: a wait that ends early (its condition came true) leaves its
//! deadline armed in Xen until the guest next blocks, when it is moved to
//! the next queued deadline or stopped. So an idle guest is woken by
//! nothing it did not ask for, and a busy one pays no hypercall for the
//! cancel (the next wait re-arms the timer anyway).
//!
//!
//! A timer VIRQ means Xen's clock has passed a deadline the guest gave it,
//! but this vCPU's clock (extrapolated from its physical CPU's time info)
//! can still read short of it: under emulation by up to a millisecond.
//! Timers run only once the guest's own clock has passed their deadline
//! (callers rely on that), so the upcall waits out such a skew, up to
//! [`MAX_SKEW_NS`], rather than re-arming a deadline Xen considers past
//! and taking upcall after upcall until the clocks agree.

use crate::events::{self, EventError, IrqGuard, IrqLock};
use crate::timer_queue::{QueueFull, TimerFn, TimerId, TimerQueue};
use core::sync::atomic::{AtomicU64, Ordering};
use hypercall::abi::event_channel::virq;
use hypercall::ops::{sched_op, vcpu};
use hypercall::EvtchnPort;
use spin::Once;

/// Timers that can be armed at once.
pub const CAPACITY: usize = 128;

struct Timers {
    queue: TimerQueue<CAPACITY>,
    /// The deadline Xen's single-shot timer is set to, until it fires or
    /// is stopped.
    armed: Option<u64>,
    /// The earliest deadline handed to Xen since its timer last fired: a
    /// timer VIRQ says Xen's clock has passed (at least) this.
    floor: Option<u64>,
}

static TIMERS: IrqLock<Timers> =
    IrqLock::new(Timers { queue: TimerQueue::new(), armed: None, floor: None });
static PORT: Once<EvtchnPort> = Once::new();
static FIRED: AtomicU64 = AtomicU64::new(0);
static PROGRAMMED: AtomicU64 = AtomicU64::new(0);
static LAST_PROGRAMMED: AtomicU64 = AtomicU64::new(0);
static BLOCKS: AtomicU64 = AtomicU64::new(0);
static VIRQS: AtomicU64 = AtomicU64::new(0);
static STRAY_VIRQS: AtomicU64 = AtomicU64::new(0);
static SKEW_MAX_NS: AtomicU64 = AtomicU64::new(0);
/// Waits whose deadline had already passed when they began (the vCPU was
/// descheduled between computing the deadline and waiting): they return
/// at once without giving Xen a deadline.
static LATE_STARTS: AtomicU64 = AtomicU64::new(0);
/// Stray upcalls by cause: no deadline given to Xen since its last fire
/// (a tick Xen sent on its own), the deadline more than [`MAX_SKEW_NS`]
/// ahead of this vCPU's clock, and neither (a fire of a deadline since
/// replaced).
static STRAY_CAUSES: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

/// The most a timer upcall waits for this vCPU's clock to reach the
/// deadline Xen fired for; a larger gap is not clock skew (the upcall then
/// finds nothing due, and the deadline is set again).
pub const MAX_SKEW_NS: u64 = 5_000_000;

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

/// In a restored domain: Xen's timer is new (periodic tick on, nothing
/// armed, the VIRQ unbound). Binds the VIRQ again and arms the earliest
/// queued deadline. Deadlines are Xen system time, which a restore on the
/// same host continues; on another host they would be off by the clocks'
/// difference.
pub fn resume() -> Result<EvtchnPort, EventError> {
    let _ = vcpu::stop_periodic_timer(0);
    let port = events::bind_virq(virq::TIMER, on_timer_virq, 0)?;
    let mut t = TIMERS.lock();
    t.armed = None;
    t.floor = None;
    if let Some(deadline) = t.queue.next_deadline() {
        set(&mut t, deadline);
    }
    Ok(port)
}

fn on_timer_virq(_: EvtchnPort, _: usize) {
    VIRQS.fetch_add(1, Ordering::Relaxed);
    // A single-shot timer fires once: Xen's is idle now.
    let given = {
        let mut t = TIMERS.lock();
        t.armed = None;
        t.floor.take()
    };
    let floor = given.unwrap_or(0);
    let now = platform::now_ns();
    if floor > now && floor - now <= MAX_SKEW_NS {
        SKEW_MAX_NS.fetch_max(floor - now, Ordering::Relaxed);
        while platform::now_ns() < floor {
            core::hint::spin_loop();
        }
    }
    let mut any = false;
    loop {
        let due = TIMERS.lock().queue.pop_due(platform::now_ns());
        match due {
            Some(t) => {
                any = true;
                FIRED.fetch_add(1, Ordering::Relaxed);
                (t.func)(t.data);
            }
            None => break,
        }
    }
    if !any {
        STRAY_VIRQS.fetch_add(1, Ordering::Relaxed);
        let cause = match given {
            None => 0,
            Some(f) if f > now.saturating_add(MAX_SKEW_NS) => 1,
            Some(_) => 2,
        };
        STRAY_CAUSES[cause].fetch_add(1, Ordering::Relaxed);
    }
    let mut t = TIMERS.lock();
    if let Some(deadline) = t.queue.next_deadline() {
        set(&mut t, deadline);
    }
}

/// Points Xen's single-shot timer at `deadline`. A deadline already past
/// fires at once (flags 0), which is what we want.
fn set(t: &mut Timers, deadline: u64) {
    PROGRAMMED.fetch_add(1, Ordering::Relaxed);
    LAST_PROGRAMMED.store(deadline, Ordering::Relaxed);
    let _ = vcpu::set_singleshot_timer(0, deadline);
    t.armed = Some(deadline);
    // The minimum, not the latest: a VIRQ of an earlier deadline may be
    // pending still, and must not make a later timer due early.
    t.floor = Some(t.floor.map_or(deadline, |f| f.min(deadline)));
}

/// Makes Xen's timer match the queue: the earliest deadline, or none.
fn sync(t: &mut Timers) {
    let next = t.queue.next_deadline();
    if t.armed == next {
        return;
    }
    match next {
        Some(deadline) => set(t, deadline),
        None => {
            PROGRAMMED.fetch_add(1, Ordering::Relaxed);
            let _ = vcpu::stop_singleshot_timer(0);
            t.armed = None;
        }
    }
}

/// Runs `func(data)` from the timer upcall at system time `deadline_ns`.
pub fn add(deadline_ns: u64, func: TimerFn, data: usize) -> Result<TimerId, QueueFull> {
    let mut t = TIMERS.lock();
    let id = t.queue.add(deadline_ns, func, data)?;
    if t.queue.next_deadline() == Some(deadline_ns) && t.armed != Some(deadline_ns) {
        set(&mut t, deadline_ns);
    }
    Ok(id)
}

/// Removes a timer that has not fired yet. Xen's timer is left as it is
/// until the next block (see the module's documentation).
pub fn cancel(id: TimerId) -> bool {
    TIMERS.lock().queue.cancel(id)
}

/// Timers fired so far, how often Xen's timer was programmed (set or
/// stopped), and timers queued now.
pub fn stats() -> (u64, u64, usize) {
    (FIRED.load(Ordering::Relaxed), PROGRAMMED.load(Ordering::Relaxed), TIMERS.lock().queue.len())
}

/// The deadline last handed to Xen's `set_singleshot_timer`.
pub fn last_programmed() -> u64 {
    LAST_PROGRAMMED.load(Ordering::Relaxed)
}

/// The largest gap a timer upcall waited out between Xen's clock (the
/// deadline it fired for) and this vCPU's.
pub fn skew_max_ns() -> u64 {
    SKEW_MAX_NS.load(Ordering::Relaxed)
}

/// Stray timer upcalls so far by cause: no deadline given since Xen's
/// last fire, the deadline over [`MAX_SKEW_NS`] ahead of this vCPU's
/// clock, neither.
pub fn stray_causes() -> [u64; 3] {
    STRAY_CAUSES.each_ref().map(|c| c.load(Ordering::Relaxed))
}

/// `VIRQ_TIMER` upcalls so far, and how many of them found no timer due
/// (a periodic tick, or a deadline Xen reached before the guest's clock).
pub fn virqs() -> (u64, u64) {
    (VIRQS.load(Ordering::Relaxed), STRAY_VIRQS.load(Ordering::Relaxed))
}

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
        // No stale deadline (of a wait that ended early) may wake us.
        sync(&mut TIMERS.lock());
        // Unmasks, blocks if nothing is pending, and takes the upcall
        // before returning (SCHEDOP_block for PV, sti; hlt for PVH).
        BLOCKS.fetch_add(1, Ordering::Relaxed);
        platform::block();
    }
}

/// `SCHEDOP_block` calls so far (from [`block_until`]).
/// How many waits began after their deadline (see [`LATE_STARTS`]).
pub fn late_starts() -> u64 {
    LATE_STARTS.load(Ordering::Relaxed)
}

pub fn blocks() -> u64 {
    BLOCKS.load(Ordering::Relaxed)
}

/// The token of the last [`wait_until`] whose timer fired.
static WOKEN: AtomicU64 = AtomicU64::new(0);
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

fn wake_waiter(token: usize) {
    WOKEN.store(token as u64, Ordering::SeqCst);
}

/// Blocks until `cond()` holds or system time `deadline_ns` passes;
/// returns `cond()`. The deadline ends the wait when its timer fires (not
/// when the clock is read past it), so a wait that times out has taken
/// exactly one timer upcall.
pub fn wait_until(deadline_ns: u64, mut cond: impl FnMut() -> bool) -> bool {
    if platform::now_ns() >= deadline_ns {
        LATE_STARTS.fetch_add(1, Ordering::Relaxed);
        return cond();
    }
    let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
    match add(deadline_ns, wake_waiter, token as usize) {
        Ok(id) => {
            block_until(|| cond() || WOKEN.load(Ordering::SeqCst) == token);
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
