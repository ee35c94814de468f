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
