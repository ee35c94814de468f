//! `sched_op` sub-operations.
//!
//! Soundness: all safe. `yield`, `block` and `shutdown` touch no guest
//! memory but their argument struct; `poll` gives Xen a slice of ports it
//! reads during the call only. Ending the domain is not a memory-safety
//! matter.

use super::ptr;
use crate::abi::sched::{self, SchedPoll, SchedShutdown, ShutdownReason};
use crate::error::{XenError, XenResult};
use crate::raw::{hypercall, nr};
use crate::types::EvtchnPort;

/// Gives up the CPU to other vCPUs that are ready to run.
pub fn yield_now() -> XenResult<()> {
    // SAFETY: SCHEDOP_yield takes no argument.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::SCHED_OP }>(sched::cmd::YIELD.into(), 0, 0, 0, 0)
    })
    .map(drop)
}

/// Blocks until an event is delivered. Xen unmasks upcalls as it blocks,
/// so the caller must be ready to take one.
pub fn block() -> XenResult<()> {
    // SAFETY: SCHEDOP_block takes no argument.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::SCHED_OP }>(sched::cmd::BLOCK.into(), 0, 0, 0, 0)
    })
    .map(drop)
}

/// Asks Xen to end this domain for `reason`. On success the vCPU does not
/// run again; an error comes back only for a bad reason.
pub fn shutdown(reason: ShutdownReason) -> XenResult<()> {
    let arg = SchedShutdown { reason: reason as u32 };
    // SAFETY: `arg` is a readable `struct sched_shutdown`.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::SCHED_OP }>(sched::cmd::SHUTDOWN.into(), ptr(&arg), 0, 0, 0)
    })
    .map(drop)
}

/// `SCHEDOP_shutdown(SHUTDOWN_suspend)`: asks the toolstack to save this
/// domain. `start_info` is the machine frame of our start-info page, in
/// the third argument: the toolstack finds it in the saved vCPU's `rdx`
/// and rewrites the page for the new domain. Returns 1 when the suspend
/// was cancelled (the domain carries on where it was: `xl save -c`, a
/// failed migration) and 0 in a new domain, after a restore or migration.
///
/// # Safety
/// On a 0 return every machine frame, event channel and grant of the old
/// domain is gone and the start-info page has been rewritten: the caller
/// must have let go of every frame of Xen's or of another domain it had
/// mapped, and rebuild them. The store and console frame fields of the
/// start-info page must hold pfns during the call (the toolstack reads
/// them as such).
pub unsafe fn suspend(start_info: crate::types::Mfn) -> XenResult<u64> {
    let arg = SchedShutdown { reason: ShutdownReason::Suspend as u32 };
    // SAFETY: `arg` is a readable `struct sched_shutdown`; the caller
    // takes care of what a suspend does to the domain.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::SCHED_OP }>(sched::cmd::SHUTDOWN.into(), ptr(&arg), start_info.0, 0, 0)
    })
}

/// Waits until one of `ports` is pending, or until system time
/// `deadline_ns` (0: no deadline). Works with upcalls masked.
pub fn poll(ports: &[EvtchnPort], deadline_ns: u64) -> XenResult<()> {
    let arg = SchedPoll {
        ports: ports.as_ptr() as u64,
        nr_ports: ports.len() as u32,
        timeout: deadline_ns,
    };
    // SAFETY: `arg` points at `ports`, a live array of `evtchn_port_t`
    // (EvtchnPort is a transparent u32) of the length given.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::SCHED_OP }>(sched::cmd::POLL.into(), ptr(&arg), 0, 0, 0)
    })
    .map(drop)
}

/// Issues `sched_op` with a command Xen does not know; for tests of the
/// error path (Xen answers `ENOSYS`).
pub fn unknown_command() -> XenResult<u64> {
    // SAFETY: Xen rejects an unknown command before reading any argument.
    XenError::from_ret(unsafe { hypercall::<{ nr::SCHED_OP }>(0xFFFF, 0, 0, 0, 0) })
}
