//! The guest's event channel state: the active ABI, the handler table and
//! the upcall that dispatches to it.

use super::fifo::{self, FifoConsumer};
use super::irq::{IrqGuard, IrqLock};
use super::table::{Handler, HandlerTable, TableError};
use super::two_level::{self, PortOwners, ScanPosition};
use super::Abi;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use hypercall::abi::event_channel::fifo as fifo_abi;
use hypercall::ops::event_channel as evtchn;
use hypercall::{DomId, EvtchnPort, XenError};
use spin::Once;

/// Ports this kernel can bind handlers to (the FIFO array page holds 1024).
pub const MAX_PORTS: usize = fifo_abi::WORDS_PER_PAGE;

/// Why an event channel operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventError {
    Xen(XenError),
    Table(TableError),
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventError::Xen(e) => write!(f, "Xen refused: {e}"),
            EventError::Table(e) => e.fmt(f),
        }
    }
}

impl From<XenError> for EventError {
    fn from(e: XenError) -> Self {
        EventError::Xen(e)
    }
}

impl From<TableError> for EventError {
    fn from(e: TableError) -> Self {
        EventError::Table(e)
    }
}

/// Only the upcall touches the scan positions, so they have their own
/// lock: handlers may take the table lock (to bind or close ports) while
/// the scan is in progress.
struct ScanState {
    two_level: ScanPosition,
    fifo: FifoConsumer,
}

/// vCPUs the kernel keeps event state for (the platform's limit).
const VCPUS: usize = platform::smp::MAX_VCPUS;

static ABI: Once<Abi> = Once::new();
static TABLE: IrqLock<HandlerTable<MAX_PORTS>> = IrqLock::new(HandlerTable::new());
/// Each vCPU consumes its own FIFO queues (its own control block) from its
/// own position in them, as Linux keeps `q->head` per CPU.
static SCAN: [IrqLock<ScanState>; VCPUS] = [const {
    IrqLock::new(ScanState { two_level: ScanPosition::new(), fifo: FifoConsumer::new() })
}; VCPUS];
/// The vCPU each port is bound to: on the 2-level ABI a vCPU's scan takes
/// only its own ports from the shared pending words (Linux's
/// `cpu_evtchn_mask`). Kept on FIFO too (each vCPU has its own queues
/// there, so the scan does not need it), for reports.
static OWNERS: PortOwners<VCPUS> = PortOwners::new();
static UPCALLS: [AtomicU64; VCPUS] = [const { AtomicU64::new(0) }; VCPUS];
static SENDS: AtomicU64 = AtomicU64::new(0);

/// The ABI in use (2-level until [`init`] chose).
pub fn abi() -> Abi {
    ABI.get().copied().unwrap_or(Abi::TwoLevel)
}

/// Picks the ABI: FIFO if `want` says so and Xen accepts the control
/// block, else 2-level. Must run before any port is bound by the guest.
/// Returns the ABI and, if FIFO was refused, Xen's reason.
pub fn init(want: Abi) -> (Abi, Option<XenError>) {
    let mut refused = None;
    let chosen = if want == Abi::Fifo {
        match platform::fifo_init() {
            Ok(()) => Abi::Fifo,
            Err(e) => {
                refused = Some(e);
                Abi::TwoLevel
            }
        }
    } else {
        Abi::TwoLevel
    };
    ABI.call_once(|| chosen);
    (abi(), refused)
}

static IN_UPCALL: [AtomicBool; VCPUS] = [const { AtomicBool::new(false) }; VCPUS];
/// Upcalls that arrived inside an upcall on the same vCPU ([`handle_upcall`]).
static NESTED: [AtomicU64; VCPUS] = [const { AtomicU64::new(0) }; VCPUS];
/// Set by a nested upcall: the upcall it interrupted scans once more.
static RESCAN: [AtomicBool; VCPUS] = [const { AtomicBool::new(false) }; VCPUS];

/// The calling vCPU's index into the per-vCPU state.
fn here() -> usize {
    (platform::smp::current() as usize).min(VCPUS - 1)
}

/// Whether the current code runs inside an event handler (on this vCPU).
pub fn in_upcall() -> bool {
    IN_UPCALL[here()].load(Ordering::Relaxed)
}

/// Called by the platform's upcall entry with upcalls masked, on the vCPU
/// the upcall is for: scans that vCPU's pending events.
///
/// An upcall inside an upcall should not happen (the upcall runs masked),
/// but if a handler unmasks, or the platform delivers one anyway (a PVH
/// guest once spun here after a live migration, docs/pvh.md), taking the
/// scan lock again would spin for ever on the lock the interrupted upcall
/// holds. So a nested upcall only clears `evtchn_upcall_pending` (under
/// PVH Xen injects the vector again for as long as it is set, which would
/// livelock the code it returns to) and leaves the scan to the upcall it
/// interrupted, which looks once more before it returns: nothing is lost.
/// Counted ([`nested_upcalls`]); nothing is printed, as the console's lock
/// may be held by the code it interrupted.
pub fn handle_upcall() {
    let cpu = here();
    let vcpu = platform::vcpu_info();
    if IN_UPCALL[cpu].load(Ordering::SeqCst) {
        NESTED[cpu].fetch_add(1, Ordering::Relaxed);
        vcpu.evtchn_upcall_pending.store(0, Ordering::SeqCst);
        RESCAN[cpu].store(true, Ordering::SeqCst);
        return;
    }
    UPCALLS[cpu].fetch_add(1, Ordering::Relaxed);
    loop {
        IN_UPCALL[cpu].store(true, Ordering::SeqCst);
        scan_pending(cpu, vcpu);
        IN_UPCALL[cpu].store(false, Ordering::SeqCst);
        // A nested upcall between the scan's last look and here left its
        // scan to this one.
        if !RESCAN[cpu].swap(false, Ordering::SeqCst) {
            break;
        }
    }
}

/// Scans until nothing is pending and no nested upcall asked for more.
fn scan_pending(cpu: usize, vcpu: &hypercall::abi::shared_info::VcpuInfo) {
    let mut scan = SCAN[cpu].lock();
    loop {
        vcpu.evtchn_upcall_pending.store(0, Ordering::SeqCst);
        RESCAN[cpu].store(false, Ordering::SeqCst);
        match abi() {
            Abi::TwoLevel => {
                if let Some(mine) = OWNERS.of(cpu as u32) {
                    two_level::scan(
                        platform::shared_info(),
                        vcpu,
                        mine,
                        &mut scan.two_level,
                        dispatch,
                    )
                }
            }
            Abi::Fifo => {
                let words = platform::fifo_pages().1;
                // A secondary vCPU's control block is registered before
                // any event is bound to it (`smp::start`).
                if let Some(cb) = platform::smp::fifo_control(cpu as u32) {
                    scan.fifo.consume(cb, words, dispatch)
                }
            }
        }
        if vcpu.evtchn_upcall_pending.load(Ordering::SeqCst) == 0
            && !RESCAN[cpu].load(Ordering::SeqCst)
        {
            break;
        }
    }
}

/// Upcalls that arrived inside an upcall on the calling vCPU (0 unless a
/// handler unmasked, or the platform delivered one while masked).
pub fn nested_upcalls() -> u64 {
    NESTED[here()].load(Ordering::Relaxed)
}

fn dispatch(port: EvtchnPort) {
    let handler = TABLE.lock().lookup(port);
    match handler {
        Some((f, data)) if crate::trace::events_on() => {
            let t0 = platform::rdtsc();
            f(port, data);
            let cycles = platform::rdtsc().wrapping_sub(t0);
            crate::trace::delivered(port, delivered(port), cycles);
        }
        Some((f, data)) => f(port, data),
        None => {
            // Nobody listens: mask it so it cannot storm, and say so once.
            mask(port);
            log::warn!("event on port {port} with no handler; port masked");
        }
    }
}

/// Runs `handler(port, data)` for every event on `port`.
pub fn register(port: EvtchnPort, handler: Handler, data: usize) -> Result<(), EventError> {
    TABLE.lock().register(port, handler, data)?;
    Ok(())
}

/// Hands `port`'s handler another `data` from the next event on.
pub fn set_handler_data(port: EvtchnPort, data: usize) -> Result<(), EventError> {
    TABLE.lock().set_data(port, data)?;
    Ok(())
}

/// Removes `port`'s handler.
pub fn unregister(port: EvtchnPort) -> Result<(), EventError> {
    TABLE.lock().unregister(port)?;
    Ok(())
}

/// Events delivered to `port`'s handler so far.
pub fn delivered(port: EvtchnPort) -> u64 {
    TABLE.lock().delivered(port)
}

/// Ports with a handler.
pub fn bound_ports() -> usize {
    TABLE.lock().bound()
}

/// Upcalls taken so far on the calling vCPU.
pub fn upcalls() -> u64 {
    UPCALLS[here()].load(Ordering::Relaxed)
}

/// Upcalls taken so far on vCPU `cpu`.
pub fn upcalls_on(cpu: u32) -> u64 {
    UPCALLS.get(cpu as usize).map_or(0, |u| u.load(Ordering::Relaxed))
}

/// Events that arrived on ports without a handler.
pub fn unknown_events() -> u64 {
    TABLE.lock().unknown
}

/// Bad links seen in the FIFO queues (every vCPU's).
pub fn fifo_bad_links() -> u64 {
    SCAN.iter().map(|s| s.lock().fifo.bad_links).sum()
}

fn check_range(port: EvtchnPort) -> Result<EvtchnPort, EventError> {
    if (port.0 as usize) < MAX_PORTS {
        Ok(port)
    } else {
        // Give it back: this kernel could never deliver it.
        let _ = evtchn::close(port);
        Err(TableError::OutOfRange(port).into())
    }
}

/// Binds virtual IRQ `virq` of vCPU 0 to a new port with `handler`.
pub fn bind_virq(virq: u32, handler: Handler, data: usize) -> Result<EvtchnPort, EventError> {
    // Upcalls stay masked until the handler is in the table: an event may
    // arrive on the new port as soon as the hypercall returns.
    let _masked = IrqGuard::new();
    let port = check_range(evtchn::bind_virq(virq, 0)?)?;
    label_virq(port, virq);
    bind_new(port, 0, handler, data)
}

/// What a VIRQ's port is, for tracing.
fn label_virq(port: EvtchnPort, virq: u32) {
    crate::trace::label(
        port,
        match virq {
            hypercall::abi::event_channel::virq::TIMER => "VIRQ_TIMER",
            hypercall::abi::event_channel::virq::DEBUG => "VIRQ_DEBUG",
            _ => "a VIRQ",
        },
    );
}

/// A new port vCPU 0 can signal itself through, with `handler`.
pub fn bind_ipi(handler: Handler, data: usize) -> Result<EvtchnPort, EventError> {
    let _masked = IrqGuard::new();
    let port = check_range(evtchn::bind_ipi(0)?)?;
    crate::trace::label(port, "IPI");
    bind_new(port, 0, handler, data)
}

/// Binds virtual IRQ `virq` of the calling vCPU (a per-vCPU VIRQ such as
/// the timer) to a new port with `handler`. Bound by the vCPU itself, with
/// its upcalls masked: the handler is in the table before any event.
pub fn bind_virq_here(virq: u32, handler: Handler, data: usize) -> Result<EvtchnPort, EventError> {
    let _masked = IrqGuard::new();
    let cpu = platform::smp::current();
    let port = check_range(evtchn::bind_virq(virq, cpu)?)?;
    label_virq(port, virq);
    bind_new(port, cpu, handler, data)
}

/// A new IPI port whose events go to the calling vCPU (any vCPU may
/// notify it with [`send`]), with `handler`.
pub fn bind_ipi_here(handler: Handler, data: usize) -> Result<EvtchnPort, EventError> {
    let _masked = IrqGuard::new();
    let cpu = platform::smp::current();
    let port = check_range(evtchn::bind_ipi(cpu)?)?;
    crate::trace::label(port, "IPI");
    bind_new(port, cpu, handler, data)
}

/// Delivers `port`'s events to vCPU `cpu` from now on
/// (`EVTCHNOP_bind_vcpu`: interdomain and unbound ports, global VIRQs).
///
/// On the 2-level ABI the move is what Linux's `xen_rebind_evtchn_to_cpu`
/// does: mask the port, move it in Xen and in the per-vCPU masks, unmask
/// it. Xen's unmask raises a port that is still pending on the vCPU it is
/// bound to now, so an event that came before the move, whose selector bit
/// the old vCPU has (and whose scan no longer takes it), is not lost. A
/// port that was masked stays masked (its owner unmasks it; Xen raises it
/// then).
pub fn bind_vcpu(port: EvtchnPort, cpu: u32) -> Result<(), EventError> {
    if abi() == Abi::Fifo {
        evtchn::bind_vcpu(port, cpu)?;
        OWNERS.bind(port, cpu);
        return Ok(());
    }
    let was_masked = is_masked(port);
    mask(port);
    let moved = evtchn::bind_vcpu(port, cpu);
    if moved.is_ok() {
        OWNERS.bind(port, cpu);
    }
    if !was_masked {
        evtchn::unmask(port)?;
    }
    Ok(moved?)
}

/// The vCPU `port`'s events go to, as this kernel bound it.
pub fn bound_vcpu(port: EvtchnPort) -> u32 {
    OWNERS.owner(port)
}

/// A new port `remote` may bind to (no handler yet: see [`register`]).
pub fn alloc_unbound(remote: DomId) -> Result<EvtchnPort, EventError> {
    let port = check_range(evtchn::alloc_unbound(remote)?)?;
    crate::trace::label(port, "allocated for a peer");
    take_stale(port);
    OWNERS.bind(port, 0);
    Ok(port)
}

/// Connects to `remote_port` of `remote` with `handler`. Xen marks the new
/// port pending as it binds (the peer may have signalled before anyone
/// listened), so the handler runs once right after binding.
pub fn bind_interdomain(
    remote: DomId,
    remote_port: EvtchnPort,
    handler: Handler,
    data: usize,
) -> Result<EvtchnPort, EventError> {
    let _masked = IrqGuard::new();
    let port = check_range(evtchn::bind_interdomain(remote, remote_port)?)?;
    crate::trace::label(port, "interdomain");
    bind_new(port, 0, handler, data)
}

/// `port`, just bound by Xen to vCPU `cpu`, gets `handler`. Called with
/// upcalls masked on the calling vCPU, so the port is in the right
/// vCPU's mask before it can be delivered there.
fn bind_new(
    port: EvtchnPort,
    cpu: u32,
    handler: Handler,
    data: usize,
) -> Result<EvtchnPort, EventError> {
    take_stale(port);
    OWNERS.bind(port, cpu);
    if let Err(e) = register(port, handler, data) {
        let _ = evtchn::close(port);
        return Err(e);
    }
    Ok(port)
}

/// Notifies the other end of `port`.
pub fn send(port: EvtchnPort) -> Result<(), EventError> {
    SENDS.fetch_add(1, Ordering::Relaxed);
    Ok(evtchn::send(port)?)
}

/// Counts `EVTCHNOP_send`s made inside a multicall ([`super::owed`], the
/// timer's block).
pub fn count_sends(n: u64) {
    SENDS.fetch_add(n, Ordering::Relaxed);
}

/// `EVTCHNOP_send` hypercalls so far (every port: devices, XenStore,
/// console).
pub fn sends() -> u64 {
    SENDS.load(Ordering::Relaxed)
}

/// Ports that had handlers in the domain before a restore and have not
/// been bound again since: closing one must not close whatever the new
/// domain has under that number.
static STALE: [AtomicU64; MAX_PORTS / 64] = [const { AtomicU64::new(0) }; MAX_PORTS / 64];

fn take_stale(port: EvtchnPort) -> bool {
    let bit = 1u64 << (port.0 % 64);
    STALE.get(port.0 as usize / 64).is_some_and(|w| w.fetch_and(!bit, Ordering::Relaxed) & bit != 0)
}

/// Closes `port` and drops its handler (if any). A port of the domain
/// before a restore (a frontend letting go of its old channel) is only
/// forgotten: Xen never knew it in this domain.
pub fn close(port: EvtchnPort) -> Result<(), EventError> {
    let _ = TABLE.lock().unregister(port);
    let closed = if take_stale(port) { Ok(()) } else { evtchn::close(port) };
    // A port with this number bound later starts on vCPU 0 (or where its
    // bind says).
    OWNERS.bind(port, 0);
    Ok(closed?)
}

/// Stops upcalls for `port`; its events stay pending.
pub fn mask(port: EvtchnPort) {
    match abi() {
        Abi::TwoLevel => two_level::mask(platform::shared_info(), port),
        Abi::Fifo => fifo::mask(platform::fifo_pages().1, port),
    }
}

/// Allows upcalls for `port` again; Xen delivers it if it is pending.
pub fn unmask(port: EvtchnPort) -> Result<(), EventError> {
    Ok(evtchn::unmask(port)?)
}

/// Whether `port` is masked.
pub fn is_masked(port: EvtchnPort) -> bool {
    match abi() {
        Abi::TwoLevel => two_level::is_masked(platform::shared_info(), port),
        Abi::Fifo => fifo::is_masked(platform::fifo_pages().1, port),
    }
}

/// Whether `port` is pending.
pub fn is_pending(port: EvtchnPort) -> bool {
    match abi() {
        Abi::TwoLevel => two_level::is_pending(platform::shared_info(), port),
        Abi::Fifo => fifo::is_pending(platform::fifo_pages().1, port),
    }
}

/// `port`'s raw state, for reports: the FIFO event word (pending, masked,
/// linked, link), or the 2-level pending and masked bits as bits 31 and 30.
pub fn word(port: EvtchnPort) -> u32 {
    match abi() {
        Abi::TwoLevel => u32::from(is_pending(port)) << 31 | u32::from(is_masked(port)) << 30,
        Abi::Fifo => platform::fifo_pages()
            .1
            .get(port.0 as usize)
            .map_or(0, |w| w.load(core::sync::atomic::Ordering::Acquire)),
    }
}

/// Clears `port`'s pending state; returns whether it was pending.
pub fn clear_pending(port: EvtchnPort) -> bool {
    match abi() {
        Abi::TwoLevel => two_level::clear_pending(platform::shared_info(), port),
        Abi::Fifo => fifo::clear_pending(platform::fifo_pages().1, port),
    }
}

/// In a restored domain: none of the old ports exists, the 2-level ABI is
/// back in force and Xen knows nothing of our FIFO pages. Forgets every
/// handler and, if FIFO was in use, registers the (cleared) control block
/// and event array again. Call with upcalls masked, before binding
/// anything.
pub fn resume() -> Result<(), XenError> {
    let mut table = TABLE.lock();
    for port in table.ports() {
        STALE[port.0 as usize / 64].fetch_or(1 << (port.0 % 64), Ordering::Relaxed);
    }
    table.clear();
    drop(table);
    OWNERS.reset();
    for scan in &SCAN {
        let mut scan = scan.lock();
        scan.two_level = ScanPosition::new();
        scan.fifo = FifoConsumer::new();
    }
    if abi() == Abi::Fifo {
        platform::fifo_reinit()?;
    }
    Ok(())
}
