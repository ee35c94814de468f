//! The vCPUs themselves: bring-up, each secondary vCPU's loop, IPIs,
//! calls and tasks, TLB shootdown, the Xen side of the lock.

use super::lock;
use crate::events::{self, EventError, IrqGuard, IrqLock};
use crate::timer;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use hypercall::ops::sched_op;
use hypercall::{EvtchnPort, XenError};
use platform::smp::{SmpError, MAX_VCPUS};

/// A function a vCPU runs for another, with its word.
pub type CallFn = fn(usize);

#[derive(Clone, Copy)]
struct Call {
    f: CallFn,
    data: usize,
    /// Run from the IPI handler (true) or from the vCPU's loop.
    in_irq: bool,
}

/// Calls waiting for one vCPU.
const MAILBOX: usize = 16;

/// `None` slots are free. Not `Option<Call>`: its `None` leaves the
/// payload uninitialised, which puts every vCPU's mailbox (a static) in
/// the image's `.data` instead of `.bss` (issue 17).
struct Mailbox {
    calls: [Slot; MAILBOX],
}

#[derive(Clone, Copy)]
struct Slot {
    f: Option<CallFn>,
    data: usize,
    in_irq: bool,
}

impl Slot {
    const FREE: Slot = Slot { f: None, data: 0, in_irq: false };

    fn is_none(&self) -> bool {
        self.f.is_none()
    }

    fn is_some_and(&self, p: impl FnOnce(Call) -> bool) -> bool {
        self.call().is_some_and(p)
    }

    fn call(&self) -> Option<Call> {
        Some(Call { f: self.f?, data: self.data, in_irq: self.in_irq })
    }

    fn take(&mut self) -> Option<Call> {
        let c = self.call();
        *self = Slot::FREE;
        c
    }
}

impl Mailbox {
    fn push(&mut self, c: Call) -> bool {
        match self.calls.iter_mut().find(|s| s.is_none()) {
            Some(slot) => {
                *slot = Slot { f: Some(c.f), data: c.data, in_irq: c.in_irq };
                true
            }
            None => false,
        }
    }

    /// The first waiting call of the kind asked for.
    fn take(&mut self, in_irq: bool) -> Option<Call> {
        self.calls.iter_mut().find(|s| s.is_some_and(|c| c.in_irq == in_irq))?.take()
    }

    fn has_task(&self) -> bool {
        self.calls.iter().any(|s| s.is_some_and(|c| !c.in_irq))
    }
}

/// What the kernel keeps per vCPU.
struct Cpu {
    online: AtomicBool,
    /// Asked to go offline (`xl vcpu-set`, or before a suspend).
    stop: AtomicBool,
    ipi_port: AtomicU32,
    kick_port: AtomicU32,
    /// IPI upcalls handled on this vCPU.
    ipis: AtomicU64,
    /// IPI upcalls for this vCPU that ran on another one.
    misdelivered: AtomicU64,
    /// Tasks run to the end.
    tasks_done: AtomicU64,
    /// Time from `VCPUOP_up` to the vCPU saying it is online (ns).
    bringup_ns: AtomicU64,
    mailbox: IrqLock<Mailbox>,
}

#[expect(
    clippy::declare_interior_mutable_const,
    reason = "a template for the array's elements, each its own atomics"
)]
const CPU: Cpu = Cpu {
    online: AtomicBool::new(false),
    stop: AtomicBool::new(false),
    ipi_port: AtomicU32::new(0),
    kick_port: AtomicU32::new(0),
    ipis: AtomicU64::new(0),
    misdelivered: AtomicU64::new(0),
    tasks_done: AtomicU64::new(0),
    bringup_ns: AtomicU64::new(0),
    mailbox: IrqLock::new(Mailbox { calls: [Slot::FREE; MAILBOX] }),
};

static CPUS: [Cpu; MAX_VCPUS] = [CPU; MAX_VCPUS];
/// vCPUs the domain has (0 until [`start`]).
static COUNT: AtomicU32 = AtomicU32::new(0);

/// Why SMP could not start, or a call could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The platform could not prepare or start a vCPU.
    Platform(u32, SmpError),
    /// Binding a vCPU's ports failed.
    Events(EventError),
    /// vCPU `n` did not say it was online within the time allowed.
    Timeout(u32),
    /// vCPU `n` is not online.
    Offline(u32),
    /// vCPU `n`'s mailbox is full.
    Busy(u32),
    Xen(XenError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Platform(n, e) => write!(f, "vCPU {n}: {e}"),
            Error::Events(e) => write!(f, "{e}"),
            Error::Timeout(n) => write!(f, "vCPU {n} did not come online within 5 s"),
            Error::Offline(n) => write!(f, "vCPU {n} is not online"),
            Error::Busy(n) => write!(f, "vCPU {n} has {MAILBOX} calls waiting already"),
            Error::Xen(e) => write!(f, "Xen refused: {e}"),
        }
    }
}

impl From<EventError> for Error {
    fn from(e: EventError) -> Self {
        Error::Events(e)
    }
}

/// The calling vCPU.
pub fn current() -> u32 {
    platform::smp::current()
}

fn cpu(n: u32) -> Option<&'static Cpu> {
    CPUS.get(n as usize)
}

/// vCPUs the domain has (1 before [`start`]).
pub fn count() -> u32 {
    COUNT.load(Ordering::Acquire).max(1)
}

/// Whether vCPU `n` is online (vCPU 0 always is).
pub fn is_online(n: u32) -> bool {
    n == 0 || cpu(n).is_some_and(|c| c.online.load(Ordering::Acquire))
}

/// The online vCPUs, as a bitmap (bit n = vCPU n).
pub fn online_mask() -> u64 {
    (0..MAX_VCPUS as u32).filter(|&n| is_online(n)).fold(0, |m, n| m | 1 << n)
}

/// Brings up every vCPU the domain has (vCPU 0 first gets its IPI and
/// kick ports). Returns how many are online, vCPU 0 included. Idempotent.
pub fn start() -> Result<u32, Error> {
    start_with(|_| true)
}

/// As [`start`], bringing up only the vCPUs `wanted` names (vCPU 0 is
/// always online).
pub fn start_with(wanted: impl Fn(u32) -> bool) -> Result<u32, Error> {
    let (n, more) = platform::smp::count();
    if more {
        log::warn!("smp: the domain has more than {MAX_VCPUS} vCPUs; the rest stay down");
    }
    COUNT.store(n, Ordering::Release);
    if !is_online_ports(0) {
        bind_ports()?;
        CPUS[0].online.store(true, Ordering::Release);
    }
    for id in (1..n).filter(|&id| wanted(id)) {
        bring_up(id)?;
    }
    Ok((0..n).filter(|&id| is_online(id)).count() as u32)
}

fn is_online_ports(n: u32) -> bool {
    cpu(n).is_some_and(|c| c.ipi_port.load(Ordering::Acquire) != 0)
}

/// Starts (or restarts, after [`offline`]) vCPU `n` and waits until it
/// says it is online.
pub fn bring_up(n: u32) -> Result<(), Error> {
    let c = cpu(n).filter(|_| n != 0).ok_or(Error::Offline(n))?;
    if c.online.load(Ordering::Acquire) {
        return Ok(());
    }
    platform::smp::prepare(n).map_err(|e| Error::Platform(n, e))?;
    // On the 2-level ABI a vCPU has no control block of its own: its
    // selector is in the `vcpu_info` just registered, and its scan takes
    // the ports bound to it (`events::two_level`).
    if events::abi() == events::Abi::Fifo {
        platform::smp::fifo_init(n).map_err(|e| Error::Platform(n, e))?;
    }
    c.stop.store(false, Ordering::SeqCst);
    let t0 = platform::now_ns();
    platform::smp::start(n, secondary_main).map_err(|e| Error::Platform(n, e))?;
    if !spin_until(t0 + 5_000_000_000, || c.online.load(Ordering::Acquire)) {
        return Err(Error::Timeout(n));
    }
    c.bringup_ns.store(platform::now_ns() - t0, Ordering::Relaxed);
    Ok(())
}

/// Asks vCPU `n` to go offline (it finishes its current task, then takes
/// itself down with `VCPUOP_down`) and waits until Xen says it is down.
/// Its ports stay bound; [`bring_up`] lets it go on.
pub fn offline(n: u32) -> Result<(), Error> {
    let c = cpu(n).filter(|_| n != 0).ok_or(Error::Offline(n))?;
    if !c.online.load(Ordering::Acquire) {
        return Ok(());
    }
    c.stop.store(true, Ordering::SeqCst);
    send_ipi(n)?;
    let deadline = platform::now_ns() + 5_000_000_000;
    let down = spin_until(deadline, || {
        !c.online.load(Ordering::Acquire) && platform::smp::is_up(n) == Ok(false)
    });
    if down {
        Ok(())
    } else {
        Err(Error::Timeout(n))
    }
}

/// Whether the calling vCPU is asked to go offline: a long task (a
/// network shard) returns when it is, so the vCPU can go down.
pub fn stopping() -> bool {
    stop_requested(current())
}

/// Whether vCPU `n` is asked to go offline (and has not yet).
pub fn stop_requested(n: u32) -> bool {
    n != 0 && cpu(n).is_some_and(|c| c.stop.load(Ordering::SeqCst))
}

/// Time vCPU `n` took from `VCPUOP_up` to online (ns), the last time.
pub fn bringup_ns(n: u32) -> u64 {
    cpu(n).map_or(0, |c| c.bringup_ns.load(Ordering::Relaxed))
}

/// Spins (yielding to Xen between checks, so the vCPU that must act can
/// run on a busy host) until `cond()` or system time `deadline_ns`.
pub fn spin_until(deadline_ns: u64, mut cond: impl FnMut() -> bool) -> bool {
    let mut n = 0u32;
    while !cond() {
        if platform::now_ns() >= deadline_ns {
            return cond();
        }
        n = n.wrapping_add(1);
        if n.is_multiple_of(64) {
            let _ = sched_op::yield_now();
        } else {
            core::hint::spin_loop();
        }
    }
    true
}

/// The calling vCPU's IPI and kick ports (both bound to it).
fn bind_ports() -> Result<(), Error> {
    let me = current();
    let c = &CPUS[me as usize];
    let kick = events::bind_ipi_here(|_, _| {}, 0)?;
    // Never an upcall: the lock's slow path polls it (SCHEDOP_poll sees
    // a masked port's events).
    events::mask(kick);
    c.kick_port.store(kick.0, Ordering::Release);
    let ipi = events::bind_ipi_here(on_ipi, me as usize)?;
    c.ipi_port.store(ipi.0, Ordering::Release);
    Ok(())
}

/// A secondary vCPU's life, from the platform's entry (upcalls masked).
fn secondary_main(n: u32) -> ! {
    let c = &CPUS[n as usize];
    let ready = timer::init().map_err(Error::from).and_then(|_| {
        if is_online_ports(n) {
            Ok(())
        } else {
            bind_ports()
        }
    });
    if let Err(e) = ready {
        log::error!("smp: vCPU {n} cannot bind its events: {e}; taking it down");
        loop {
            let _ = platform::smp::down_self();
        }
    }
    c.online.store(true, Ordering::Release);
    events::enable_upcalls();
    loop {
        timer::block_until(|| c.stop.load(Ordering::SeqCst) || c.mailbox.lock().has_task());
        let task = c.mailbox.lock().take(false);
        if let Some(t) = task {
            (t.f)(t.data);
            c.tasks_done.fetch_add(1, Ordering::Release);
        }
        if c.stop.load(Ordering::SeqCst) && !c.mailbox.lock().has_task() {
            let masked = IrqGuard::new();
            c.online.store(false, Ordering::Release);
            // Returns when vCPU 0 brings this vCPU up again.
            let _ = platform::smp::down_self();
            c.stop.store(false, Ordering::SeqCst);
            c.online.store(true, Ordering::Release);
            drop(masked);
        }
    }
}

/// The IPI handler: counts, then runs the calls meant for upcall context.
fn on_ipi(_: EvtchnPort, n: usize) {
    let Some(c) = CPUS.get(n) else { return };
    if current() as usize != n {
        c.misdelivered.fetch_add(1, Ordering::Relaxed);
    }
    c.ipis.fetch_add(1, Ordering::Release);
    loop {
        let call = c.mailbox.lock().take(true);
        match call {
            Some(call) => (call.f)(call.data),
            None => break,
        }
    }
}

/// Notifies vCPU `n`'s IPI port.
pub fn send_ipi(n: u32) -> Result<(), Error> {
    let port = cpu(n).map_or(0, |c| c.ipi_port.load(Ordering::Acquire));
    if port == 0 {
        return Err(Error::Offline(n));
    }
    Ok(events::send(EvtchnPort(port))?)
}

/// IPI upcalls handled on vCPU `n`, and IPI upcalls of any vCPU that ran
/// on another vCPU than their port's.
pub fn ipis(n: u32) -> (u64, u64) {
    let handled = cpu(n).map_or(0, |c| c.ipis.load(Ordering::Acquire));
    (handled, CPUS.iter().map(|c| c.misdelivered.load(Ordering::Relaxed)).sum())
}

/// Tasks vCPU `n` ran to the end.
pub fn tasks_done(n: u32) -> u64 {
    cpu(n).map_or(0, |c| c.tasks_done.load(Ordering::Acquire))
}

fn post(n: u32, call: Call) -> Result<(), Error> {
    let c = cpu(n).ok_or(Error::Offline(n))?;
    if !is_online(n) {
        return Err(Error::Offline(n));
    }
    if !c.mailbox.lock().push(call) {
        return Err(Error::Busy(n));
    }
    send_ipi(n)
}

/// Runs `f(data)` on vCPU `n` from its IPI handler (upcall context: it
/// must not block).
pub fn call_irq(n: u32, f: CallFn, data: usize) -> Result<(), Error> {
    post(n, Call { f, data, in_irq: true })
}

/// Runs `f(data)` on secondary vCPU `n` from its loop (it may block);
/// [`tasks_done`] counts it when it returns.
pub fn run_task(n: u32, f: CallFn, data: usize) -> Result<(), Error> {
    if n == 0 {
        return Err(Error::Offline(0));
    }
    post(n, Call { f, data, in_irq: false })
}

/// Flushes `va` (or whole TLBs) on every online vCPU, this one included,
/// and returns when all have: PV with one `MMUEXT_INVLPG_MULTI` /
/// `TLB_FLUSH_MULTI` (Xen flushes the physical CPUs the vCPUs ran on),
/// PVH with an IPI to each other vCPU whose handler flushes and counts.
/// Returns how many other vCPUs flushed.
pub fn tlb_shootdown(va: Option<usize>) -> Result<u32, Error> {
    let me = current();
    let others = online_mask() & !(1 << me);
    platform::smp::flush_tlb_local(va);
    if others == 0 {
        return Ok(0);
    }
    if !platform::is_pvh() {
        platform::smp::flush_tlb_multi(others, va).map_err(Error::Xen)?;
        return Ok(others.count_ones());
    }
    let data = va.map_or(usize::MAX, |v| v);
    let targets: u32 = others.count_ones();
    let before: [u64; MAX_VCPUS] = core::array::from_fn(|n| FLUSHES[n].load(Ordering::Acquire));
    for n in 0..MAX_VCPUS as u32 {
        if others & (1 << n) != 0 {
            call_irq(n, flush_here, data)?;
        }
    }
    let deadline = platform::now_ns() + 1_000_000_000;
    for n in 0..MAX_VCPUS {
        if others & (1 << n) != 0
            && !spin_until(deadline, || FLUSHES[n].load(Ordering::Acquire) > before[n])
        {
            return Err(Error::Timeout(n as u32));
        }
    }
    Ok(targets)
}

/// TLB flushes done on each vCPU by a PVH shootdown's IPI.
static FLUSHES: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];

fn flush_here(va: usize) {
    platform::smp::flush_tlb_local((va != usize::MAX).then_some(va));
    FLUSHES[current() as usize].fetch_add(1, Ordering::Release);
}

/// The Xen side of [`lock::PollLock`]: each vCPU's kick port, masked,
/// polled with `SCHEDOP_poll`.
pub struct XenWaiters;

/// The waiters every [`lock::PollLock`] of the kernel uses.
pub static XEN_WAITERS: XenWaiters = XenWaiters;

/// `SCHEDOP_poll`s of a lock wait that returned with neither the kick nor
/// the timeout (an upcall was due), each followed by another poll.
static EARLY_POLL_RETURNS: AtomicU64 = AtomicU64::new(0);

/// How many lock-wait polls returned early so far (see [`XenWaiters`]).
pub fn early_poll_returns() -> u64 {
    EARLY_POLL_RETURNS.load(Ordering::Relaxed)
}

fn kick_port(cpu_id: usize) -> Option<EvtchnPort> {
    let p = CPUS.get(cpu_id)?.kick_port.load(Ordering::Acquire);
    (p != 0).then_some(EvtchnPort(p))
}

impl lock::Waiters for XenWaiters {
    fn me(&self) -> usize {
        current() as usize
    }

    fn clear(&self, cpu_id: usize) {
        if let Some(p) = kick_port(cpu_id) {
            events::clear_pending(p);
        }
    }

    fn wait(&self, cpu_id: usize, timeout_ns: u64) -> bool {
        let Some(p) = kick_port(cpu_id) else {
            // No port (SMP never started): yield instead of polling.
            let _ = sched_op::yield_now();
            return true;
        };
        let deadline = platform::now_ns().saturating_add(timeout_ns);
        loop {
            // SCHEDOP_poll returns at once if the port is pending already,
            // and also, with the kick not pending, when an upcall is due
            // on this vCPU (Xen's `do_poll` checks
            // `local_events_need_delivery`: a timer or IPI event with
            // upcalls on). Such a return is neither a kick nor the
            // timeout: the upcall has run on the way back, so poll again.
            let _ = sched_op::poll(&[p], deadline);
            if events::clear_pending(p) {
                return true;
            }
            if platform::now_ns() >= deadline {
                return false;
            }
            EARLY_POLL_RETURNS.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn kick(&self, cpu_id: usize) {
        if let Some(p) = kick_port(cpu_id) {
            let _ = events::send(p);
        }
    }
}

/// Before a suspend: takes every online secondary vCPU down (a PV
/// domain's saved state has the contexts of the vCPUs that are up, and
/// this guest brings its own back after). Returns the ones that were
/// online, for [`resume`].
pub fn suspend_prepare() -> u64 {
    let was = online_mask() & !1;
    for n in 1..MAX_VCPUS as u32 {
        if was & (1 << n) != 0 {
            if let Err(e) = offline(n) {
                crate::kprintln!("suspend: vCPU {n} did not go down: {e}");
            }
        }
    }
    was
}

/// After a suspend, on vCPU 0 with upcalls on: brings back the vCPUs
/// `was` names. Cancelled (`new_domain` false): they go on with
/// `VCPUOP_up`. In a new domain: none of their registrations, contexts or
/// ports exists any more, nor vCPU 0's IPI and kick ports; those are bound
/// again and every vCPU starts afresh from its entry.
pub fn resume(was: u64, new_domain: bool) {
    if new_domain && is_online_ports(0) {
        platform::smp::forget_after_restore();
        for (n, c) in CPUS.iter().enumerate() {
            c.ipi_port.store(0, Ordering::Release);
            c.kick_port.store(0, Ordering::Release);
            c.stop.store(false, Ordering::SeqCst);
            *c.mailbox.lock() = Mailbox { calls: [Slot::FREE; MAILBOX] };
            timer::forget_vcpu(n as u32);
        }
        if let Err(e) = bind_ports() {
            crate::kprintln!("resume: vCPU 0's IPI ports: {e}");
        }
    }
    let t0 = platform::now_ns();
    let mut back = 0;
    for n in 1..MAX_VCPUS as u32 {
        if was & (1 << n) != 0 {
            match bring_up(n) {
                Ok(()) => back += 1,
                Err(e) => crate::kprintln!("resume: vCPU {n} not back: {e}"),
            }
        }
    }
    if was != 0 {
        crate::kprintln!(
            "resume: {back} secondary vCPUs back ({}) in {} us; online mask {:#x}",
            if new_domain { "initialised anew" } else { "VCPUOP_up" },
            (platform::now_ns() - t0) / 1000,
            online_mask()
        );
    }
}
