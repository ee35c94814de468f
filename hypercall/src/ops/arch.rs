//! The x86-64 PV entry points: virtual IDT and callbacks.
//!
//! Soundness: both calls are `unsafe`: Xen will jump to the addresses
//! given, with its own frame layout. The tables are read during the call
//! only (Xen copies the trap table).

use super::ptr;
use crate::abi::arch::{CallbackRegister, TrapInfo, CALLBACKOP_REGISTER};
use crate::error::{XenError, XenResult};
use crate::raw::{hypercall, nr};

/// Installs the virtual IDT. `table` must end with an entry whose address is 0.
///
/// # Safety
/// Every address in `table` must be an entry stub that handles Xen's
/// exception frame for its vector; Xen will jump there on the next fault.
pub unsafe fn set_trap_table(table: &[TrapInfo]) -> XenResult<()> {
    assert!(table.last().is_some_and(|t| t.address == 0), "trap table needs its terminator");
    // SAFETY: `table` is a live, terminated array; the caller vouches for the handlers.
    XenError::from_ret(unsafe { hypercall::<{ nr::SET_TRAP_TABLE }>(ptr(&table[0]), 0, 0, 0, 0) })
        .map(drop)
}

/// Registers a callback (`CALLBACKTYPE_*`).
///
/// # Safety
/// `address` must be an entry stub that handles Xen's frame for that callback.
pub unsafe fn register_callback(kind: u16, flags: u16, address: u64) -> XenResult<()> {
    let arg = CallbackRegister { kind, flags, address };
    // SAFETY: `arg` is a readable `struct callback_register`; the caller
    // vouches for the entry point.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::CALLBACK_OP }>(CALLBACKOP_REGISTER.into(), ptr(&arg), 0, 0, 0)
    })
    .map(drop)
}
