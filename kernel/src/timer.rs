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
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use hypercall::abi::event_channel::virq;
use hypercall::ops::{sched_op, vcpu};
use hypercall::EvtchnPort;
use platform::TimerChange;

/// Timers that can be armed at once (on each vCPU).
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

/// One vCPU's timers: Xen's single-shot timer and `VIRQ_TIMER` are per
/// vCPU, so each vCPU keeps its own queue, armed deadline and counters
/// (issue 21). vCPU 0's are what the kernel always had.
struct PerCpu {
    timers: IrqLock<Timers>,
    /// The bound `VIRQ_TIMER` port (0: none).
    port: AtomicU32,
    fired: AtomicU64,
    programmed: AtomicU64,
    last_programmed: AtomicU64,
    blocks: AtomicU64,
    /// Calls (owed notifications, timer changes) that went into Xen in a
    /// block's own trap.
    carried: AtomicU64,
    virqs: AtomicU64,
    stray_virqs: AtomicU64,
    skew_max_ns: AtomicU64,
    /// Waits whose deadline had already passed when they began (the vCPU
    /// was descheduled between computing the deadline and waiting): they
    /// return at once without giving Xen a deadline.
    late_starts: AtomicU64,
    /// Stray upcalls by cause: no deadline given to Xen since its last
    /// fire (a tick Xen sent on its own), the deadline more than
    /// [`MAX_SKEW_NS`] ahead of this vCPU's clock, and neither (a fire of a
    /// deadline since replaced).
    stray_causes: [AtomicU64; 3],
    /// Timer upcalls that ran on another vCPU than the VIRQ's.
    wrong_vcpu: AtomicU64,
    /// The token of the last [`wait_until`] whose timer fired.
    woken: AtomicU64,
}

impl PerCpu {
    const fn new() -> Self {
        PerCpu {
            timers: IrqLock::new(Timers { queue: TimerQueue::new(), armed: None, floor: None }),
            port: AtomicU32::new(0),
            fired: AtomicU64::new(0),
            programmed: AtomicU64::new(0),
            last_programmed: AtomicU64::new(0),
            blocks: AtomicU64::new(0),
            carried: AtomicU64::new(0),
            virqs: AtomicU64::new(0),
            stray_virqs: AtomicU64::new(0),
            skew_max_ns: AtomicU64::new(0),
            late_starts: AtomicU64::new(0),
            stray_causes: [const { AtomicU64::new(0) }; 3],
            wrong_vcpu: AtomicU64::new(0),
            woken: AtomicU64::new(0),
        }
    }
}

const VCPUS: usize = platform::smp::MAX_VCPUS;
static CPUS: [PerCpu; VCPUS] = [const { PerCpu::new() }; VCPUS];
static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

/// The calling vCPU's timers.
fn here() -> &'static PerCpu {
    &CPUS[(platform::smp::current() as usize).min(VCPUS - 1)]
}

/// The most a timer upcall waits for this vCPU's clock to reach the
/// deadline Xen fired for; a larger gap is not clock skew (the upcall then
/// finds nothing due, and the deadline is set again).
pub const MAX_SKEW_NS: u64 = 5_000_000;

/// Binds the calling vCPU's `VIRQ_TIMER` and stops the periodic tick
/// Xen starts every PV vCPU with, so an idle vCPU is woken only by the
/// deadlines it asked for. Each vCPU calls it for itself.
pub fn init() -> Result<EvtchnPort, EventError> {
    let me = here();
    let bound = me.port.load(Ordering::Acquire);
    if bound != 0 {
        return Ok(EvtchnPort(bound));
    }
    let cpu = platform::smp::current();
    let _ = vcpu::stop_periodic_timer(cpu);
    let port = events::bind_virq_here(virq::TIMER, on_timer_virq, cpu as usize)?;
    me.port.store(port.0, Ordering::Release);
    Ok(port)
}

/// In a restored domain (on vCPU 0, the only one up): Xen's timer is new
/// (periodic tick on, nothing armed, the VIRQ unbound). Binds the VIRQ
/// again and arms the earliest queued deadline. Deadlines are Xen system
/// time, which a restore on the same host continues; on another host they
/// would be off by the clocks' difference.
pub fn resume() -> Result<EvtchnPort, EventError> {
    let cpu = platform::smp::current();
    let _ = vcpu::stop_periodic_timer(cpu);
    let port = events::bind_virq_here(virq::TIMER, on_timer_virq, cpu as usize)?;
    let me = here();
    me.port.store(port.0, Ordering::Release);
    let mut t = me.timers.lock();
    t.armed = None;
    t.floor = None;
    if let Some(deadline) = t.queue.next_deadline() {
        set(me, &mut t, deadline);
    }
    Ok(port)
}

fn on_timer_virq(_: EvtchnPort, cpu: usize) {
    let me = here();
    if platform::smp::current() as usize != cpu {
        me.wrong_vcpu.fetch_add(1, Ordering::Relaxed);
    }
    me.virqs.fetch_add(1, Ordering::Relaxed);
    // A single-shot timer fires once: Xen's is idle now.
    let given = {
        let mut t = me.timers.lock();
        t.armed = None;
        t.floor.take()
    };
    let floor = given.unwrap_or(0);
    let now = platform::now_ns();
    if floor > now && floor - now <= MAX_SKEW_NS {
        me.skew_max_ns.fetch_max(floor - now, Ordering::Relaxed);
        while platform::now_ns() < floor {
            core::hint::spin_loop();
        }
    }
    let mut any = false;
    loop {
        let due = me.timers.lock().queue.pop_due(platform::now_ns());
        match due {
            Some(t) => {
                any = true;
                me.fired.fetch_add(1, Ordering::Relaxed);
                (t.func)(t.data);
            }
            None => break,
        }
    }
    if !any {
        me.stray_virqs.fetch_add(1, Ordering::Relaxed);
        let cause = match given {
            None => 0,
            Some(f) if f > now.saturating_add(MAX_SKEW_NS) => 1,
            Some(_) => 2,
        };
        me.stray_causes[cause].fetch_add(1, Ordering::Relaxed);
    }
    let mut t = me.timers.lock();
    if let Some(deadline) = t.queue.next_deadline() {
        set(me, &mut t, deadline);
    }
}

/// Points this vCPU's single-shot timer at `deadline`. A deadline already
/// past fires at once (flags 0), which is what we want.
fn set(me: &PerCpu, t: &mut Timers, deadline: u64) {
    note_set(me, t, deadline);
    let _ = vcpu::set_singleshot_timer(platform::smp::current(), deadline);
}

/// The bookkeeping of arming Xen's timer for `deadline` (the caller makes
/// the call).
fn note_set(me: &PerCpu, t: &mut Timers, deadline: u64) {
    me.programmed.fetch_add(1, Ordering::Relaxed);
    me.last_programmed.store(deadline, Ordering::Relaxed);
    t.armed = Some(deadline);
    // The minimum, not the latest: a VIRQ of an earlier deadline may be
    // pending still, and must not make a later timer due early.
    t.floor = Some(t.floor.map_or(deadline, |f| f.min(deadline)));
}

/// What makes Xen's timer match the queue (the earliest deadline, or
/// none), noted as done: the caller makes the call (the block carries it).
fn plan(me: &PerCpu, t: &mut Timers) -> TimerChange {
    let next = t.queue.next_deadline();
    if t.armed == next {
        return TimerChange::Keep;
    }
    match next {
        Some(deadline) => {
            note_set(me, t, deadline);
            TimerChange::Set(deadline)
        }
        None => {
            me.programmed.fetch_add(1, Ordering::Relaxed);
            t.armed = None;
            TimerChange::Stop
        }
    }
}

/// Runs `func(data)` from the calling vCPU's timer upcall at system time
/// `deadline_ns`.
pub fn add(deadline_ns: u64, func: TimerFn, data: usize) -> Result<TimerId, QueueFull> {
    add_armed(deadline_ns, func, data, true)
}

/// [`add`]; without `arm`, Xen's timer is left for the caller's next
/// block to point at the new deadline (in the block's own trap): only for
/// a caller that blocks next, before the deadline matters.
fn add_armed(
    deadline_ns: u64,
    func: TimerFn,
    data: usize,
    arm: bool,
) -> Result<TimerId, QueueFull> {
    let me = here();
    let mut t = me.timers.lock();
    let id = t.queue.add(deadline_ns, func, data)?;
    if arm && t.queue.next_deadline() == Some(deadline_ns) && t.armed != Some(deadline_ns) {
        set(me, &mut t, deadline_ns);
    }
    Ok(id)
}

/// Removes a timer of the calling vCPU that has not fired yet. Xen's
/// timer is left as it is until the next block (see the module's
/// documentation).
pub fn cancel(id: TimerId) -> bool {
    here().timers.lock().queue.cancel(id)
}

/// This vCPU's timers fired so far, how often its Xen timer was
/// programmed (set or stopped), and timers queued now.
pub fn stats() -> (u64, u64, usize) {
    let me = here();
    (
        me.fired.load(Ordering::Relaxed),
        me.programmed.load(Ordering::Relaxed),
        me.timers.lock().queue.len(),
    )
}

/// The deadline last handed to this vCPU's `set_singleshot_timer`.
pub fn last_programmed() -> u64 {
    here().last_programmed.load(Ordering::Relaxed)
}

/// The largest gap a timer upcall of this vCPU waited out between Xen's
/// clock (the deadline it fired for) and this vCPU's.
pub fn skew_max_ns() -> u64 {
    here().skew_max_ns.load(Ordering::Relaxed)
}

/// This vCPU's stray timer upcalls so far by cause: no deadline given
/// since Xen's last fire, the deadline over [`MAX_SKEW_NS`] ahead of this
/// vCPU's clock, neither.
pub fn stray_causes() -> [u64; 3] {
    here().stray_causes.each_ref().map(|c| c.load(Ordering::Relaxed))
}

/// This vCPU's `VIRQ_TIMER` upcalls so far, and how many of them found no
/// timer due (a periodic tick, or a deadline Xen reached before the
/// guest's clock).
pub fn virqs() -> (u64, u64) {
    let me = here();
    (me.virqs.load(Ordering::Relaxed), me.stray_virqs.load(Ordering::Relaxed))
}

/// In a restored domain, for a secondary vCPU (down, initialised anew
/// later): its timer VIRQ port is gone and Xen's timer is new; the next
/// [`init`] on it binds again. Its queued timers stay queued.
pub fn forget_vcpu(cpu: u32) {
    if let Some(c) = CPUS.get(cpu as usize).filter(|_| cpu != 0) {
        c.port.store(0, Ordering::Release);
        let mut t = c.timers.lock();
        t.armed = None;
        t.floor = None;
    }
}

/// Timer upcalls of any vCPU that ran on another vCPU than their VIRQ's
/// (0 unless event delivery is broken).
pub fn wrong_vcpu_upcalls() -> u64 {
    CPUS.iter().map(|c| c.wrong_vcpu.load(Ordering::Relaxed)).sum()
}

/// Blocks until `cond()` holds, re-checking after every event. The check
/// runs with upcalls masked and `SCHEDOP_block` unmasks them atomically, so
/// an event between the check and the block is never missed.
///
/// Must not be called from an event handler (it would let upcalls nest).
pub fn block_until(mut cond: impl FnMut() -> bool) {
    assert!(!events::in_upcall(), "block_until called from an event handler");
    let me = here();
    loop {
        let _masked = IrqGuard::new();
        if cond() {
            return;
        }
        // No stale deadline (of a wait that ended early) may wake us.
        let timer = plan(me, &mut me.timers.lock());
        // What a deferring service loop owes its backends goes in the same
        // trap (events::owed).
        let owed = events::owed::take_owed();
        events::count_sends(owed.len() as u64);
        // Unmasks, blocks if nothing is pending, and takes the upcall
        // before returning (SCHEDOP_block for PV, sti; hlt for PVH).
        me.blocks.fetch_add(1, Ordering::Relaxed);
        let carried = platform::block_carrying(owed.ports(), timer);
        me.carried.fetch_add(carried, Ordering::Relaxed);
    }
}

/// How many waits of this vCPU began after their deadline.
pub fn late_starts() -> u64 {
    here().late_starts.load(Ordering::Relaxed)
}

/// `SCHEDOP_block` calls so far on this vCPU (from [`block_until`]).
pub fn blocks() -> u64 {
    here().blocks.load(Ordering::Relaxed)
}

/// Calls that went into Xen inside this vCPU's blocks' own traps so far
/// (notifications and timer changes that cost no trap of their own).
pub fn carried() -> u64 {
    here().carried.load(Ordering::Relaxed)
}

fn wake_waiter(token: usize) {
    here().woken.store(token as u64, Ordering::SeqCst);
}

/// Blocks until `cond()` holds or system time `deadline_ns` passes;
/// returns `cond()`. The deadline ends the wait when its timer fires (not
/// when the clock is read past it), so a wait that times out has taken
/// exactly one timer upcall.
pub fn wait_until(deadline_ns: u64, mut cond: impl FnMut() -> bool) -> bool {
    let me = here();
    if platform::now_ns() >= deadline_ns {
        me.late_starts.fetch_add(1, Ordering::Relaxed);
        return cond();
    }
    let token = NEXT_TOKEN.fetch_add(1, Ordering::Relaxed);
    // Not armed here: the block below points Xen's timer at it in its own
    // trap (a wait whose condition already holds sets no timer at all).
    match add_armed(deadline_ns, wake_waiter, token as usize, false) {
        Ok(id) => {
            block_until(|| cond() || me.woken.load(Ordering::SeqCst) == token);
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
