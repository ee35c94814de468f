//! `vcpu_op` sub-operations.
//!
//! Soundness: the timer operations and `runstate` (`VCPUOP_get_runstate_info`,
//! a one-off copy into a struct the wrapper owns) are safe. This guest
//! does not use `VCPUOP_register_vcpu_info` or
//! `VCPUOP_register_runstate_memory_area`: after those Xen writes the
//! vCPU info or runstate into a caller-named guest address for as long as
//! the vCPU lives, so a wrapper for either must be an `unsafe fn` whose
//! caller reserves the memory for Xen (as
//! [`event_channel::init_control`](super::event_channel::init_control)
//! does), or take an owned page that lives as long as Xen may write it.

use super::ptr_mut;
use crate::abi::vcpu::{cmd, VcpuRunstateInfo, VcpuSetSingleshotTimer};
use crate::error::{XenError, XenResult};
use crate::raw::{hypercall, nr};

/// Arms `vcpu`'s one-shot timer for absolute system time `deadline_ns`;
/// it raises `VIRQ_TIMER`. A deadline in the past fires at once.
pub fn set_singleshot_timer(vcpu: u32, deadline_ns: u64) -> XenResult<()> {
    let mut arg = VcpuSetSingleshotTimer { timeout_abs_ns: deadline_ns, flags: 0 };
    // SAFETY: `arg` is a `struct vcpu_set_singleshot_timer`.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::VCPU_OP }>(
            cmd::SET_SINGLESHOT_TIMER.into(),
            vcpu.into(),
            ptr_mut(&mut arg),
            0,
            0,
        )
    })
    .map(drop)
}

/// Disarms `vcpu`'s one-shot timer.
pub fn stop_singleshot_timer(vcpu: u32) -> XenResult<()> {
    // SAFETY: the command takes no argument struct.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::VCPU_OP }>(cmd::STOP_SINGLESHOT_TIMER.into(), vcpu.into(), 0, 0, 0)
    })
    .map(drop)
}

/// Stops the periodic tick Xen gives every PV vCPU by default, so an idle
/// guest is not woken for nothing.
pub fn stop_periodic_timer(vcpu: u32) -> XenResult<()> {
    // SAFETY: the command takes no argument struct.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::VCPU_OP }>(cmd::STOP_PERIODIC_TIMER.into(), vcpu.into(), 0, 0, 0)
    })
    .map(drop)
}

/// How long `vcpu` has spent running, runnable, blocked and offline.
pub fn runstate(vcpu: u32) -> XenResult<VcpuRunstateInfo> {
    let mut info = VcpuRunstateInfo::default();
    // SAFETY: `info` is a writable `struct vcpu_runstate_info`.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::VCPU_OP }>(
            cmd::GET_RUNSTATE_INFO.into(),
            vcpu.into(),
            ptr_mut(&mut info),
            0,
            0,
        )
    })?;
    Ok(info)
}
