//! Suspend and resume for `xl save`, `xl save -c` (checkpoint) and
//! `xl migrate`, in the order the toolstack expects (Linux:
//! `drivers/xen/manage.c`, `do_suspend`): the request on
//! `control/shutdown` was acknowledged by the caller; here the grant
//! frames are unmapped, upcalls masked, the console flushed, and
//! `platform::suspend` does the hypercall. Then one of two outcomes:
//! - cancelled: the same domain; the grant frames are mapped again and the
//!   guest carries on;
//! - a new domain (restore, migration): every port, grant and the FIFO
//!   registration of the old domain are gone. The event channel ABI is set
//!   up again, the timer and debug VIRQs bound again, the console and
//!   store rings take their new ports, every XenStore watch is registered
//!   again, and the grant table starts empty.
//!
//! Requests are taken from the main loop, one at a time: a second
//! `suspend` on `control/shutdown` while one runs waits for the next turn
//! of the loop.

use crate::events::{self, IrqGuard};
use crate::{console, diag, grants, kprintln, timer, xenbus};
use core::sync::atomic::{AtomicU64, Ordering};
use hypercall::abi::event_channel::virq;
use platform::suspend::{self as psuspend, Outcome};

static CANCELLED: AtomicU64 = AtomicU64::new(0);
static RESUMED: AtomicU64 = AtomicU64::new(0);
/// Xen system time the domain spent suspended (from just before the
/// suspend hypercall to just after it returned), summed over every
/// suspend. Wrapping: after a move to a host whose clock is behind, a
/// span is negative, and the running clock still goes on from where it
/// stopped.
static SUSPENDED_NS: AtomicU64 = AtomicU64::new(0);

/// The running clock: Xen system time with the spans the domain spent
/// suspended (saved, checkpointed, in a migration's last round) taken
/// out, so it stops while the domain does not run. The network
/// services' timeouts run on it (an idle connection is not closed for
/// the time the domain spent in a save file).
pub fn running_ns() -> u64 {
    platform::now_ns().wrapping_sub(SUSPENDED_NS.load(Ordering::Relaxed))
}

/// The Xen system time at which [`running_ns`] will read `running` (for
/// a timer deadline), if no suspend comes first.
pub fn system_ns_at(running: u64) -> u64 {
    running.wrapping_add(SUSPENDED_NS.load(Ordering::Relaxed))
}

/// Suspends that were cancelled, and that resumed in a new domain.
pub fn counts() -> (u64, u64) {
    (CANCELLED.load(Ordering::Relaxed), RESUMED.load(Ordering::Relaxed))
}

/// Why a suspend did not happen.
#[derive(Debug)]
pub enum SuspendError {
    Grants(grant_tables::GrantError),
    Xen(hypercall::XenError),
}

impl core::fmt::Display for SuspendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SuspendError::Grants(e) => write!(f, "grant table: {e}"),
            SuspendError::Xen(e) => write!(f, "Xen refused: {e}"),
        }
    }
}

/// Suspends the domain and brings it back (the devices are the caller's:
/// see the apps). Returns what it came back to.
pub fn suspend() -> Result<Outcome, SuspendError> {
    kprintln!("suspend: the toolstack asked; suspending");
    // Secondary vCPUs go down first and come back after (docs/smp.md).
    let vcpus = crate::smp::suspend_prepare();
    let t0 = platform::now_ns();
    // Pages ballooned in since the last suspend: logged for the last
    // round of a live migration (docs/migration.md).
    crate::balloon::before_suspend();
    let grant_frames = grants::suspend().map_err(|e| {
        crate::smp::resume(vcpus, false);
        SuspendError::Grants(e)
    })?;
    let _ = console::flush();
    let masked = IrqGuard::new();
    let before = platform::now_ns();
    let result = psuspend::suspend();
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            if let Some(g) = grant_frames {
                if let Err(ge) = g.resume() {
                    kprintln!("suspend: grant frames lost: {ge}");
                }
            }
            drop(masked);
            kprintln!("suspend: Xen refused: {e}");
            crate::smp::resume(vcpus, false);
            return Err(SuspendError::Xen(e));
        }
    };
    if let Outcome::Resumed { console: port, .. } = outcome {
        // Nothing else may run before the event channels are back.
        if let Err(e) = events::resume() {
            kprintln!("resume: event channels: FIFO refused ({e})");
        }
        console::resume(port);
        if events::register(port, |_, _| {}, 0).is_ok() {
            events::mask(port);
        }
        if let Err(e) = timer::resume() {
            kprintln!("resume: cannot bind the timer VIRQ: {e}");
        }
        if let Err(e) = events::bind_virq(virq::DEBUG, diag::on_debug_virq, 0) {
            log::warn!("resume: cannot bind the debug VIRQ: {e}");
        }
    }
    let span = platform::now_ns().wrapping_sub(before);
    SUSPENDED_NS.fetch_add(span, Ordering::Relaxed);
    if let Some(g) = grant_frames {
        if let Err(e) = g.resume() {
            kprintln!("resume: grant table: {e}");
        }
    }
    drop(masked);
    crate::smp::resume(vcpus, matches!(outcome, Outcome::Resumed { .. }));
    crate::balloon::after_suspend(matches!(outcome, Outcome::Resumed { .. }));
    let ms = platform::now_ns().saturating_sub(t0) / 1_000_000;
    let suspended_ms = span as i64 / 1_000_000;
    match outcome {
        Outcome::Cancelled => {
            let n = CANCELLED.fetch_add(1, Ordering::Relaxed) + 1;
            kprintln!("suspend: cancelled by the toolstack (checkpoint); carrying on ({n} cancelled so far, {ms} ms, {suspended_ms} ms of it suspended)");
        }
        Outcome::Resumed { store, .. } => {
            let n = RESUMED.fetch_add(1, Ordering::Relaxed) + 1;
            match xenbus::resume(store) {
                Ok(w) => kprintln!("resume: xenstore reconnected, {w} watches registered again"),
                Err(e) => kprintln!("resume: xenstore: {e:?}"),
            }
            kprintln!(
                "resume: running in a new domain (resume {n}; {ms} ms since the suspend began, as the guest's clock counts; {suspended_ms} ms of it suspended, left out of the running clock)"
            );
        }
    }
    Ok(outcome)
}
