//! `vcpu_op` sub-operations.
//!
//! Soundness: the timer operations, `runstate` (`VCPUOP_get_runstate_info`,
//! a one-off copy into a struct the wrapper owns), `up`, `down` and `is_up`
//! (vCPU ids, which Xen checks; a vCPU taken down keeps its state and goes
//! on where it stopped when brought up) are safe. Three are `unsafe`:
//! [`register_vcpu_info`] (Xen writes the `vcpu_info` at a caller-named
//! frame for as long as the vCPU lives, like
//! [`event_channel::init_control`](super::event_channel::init_control)),
//! and [`initialise_pv`] / [`initialise_hvm`] (Xen later runs the new vCPU
//! at the caller's addresses, on the caller's stack and page tables). This
//! guest does not use `VCPUOP_register_runstate_memory_area` (kind 1 as
//! well: it takes a one-off copy with [`runstate`] instead).

use super::ptr_mut;
use crate::abi::vcpu::{cmd, VcpuRegisterVcpuInfo, VcpuRunstateInfo, VcpuSetSingleshotTimer};
use crate::abi::vcpu_context::{VcpuGuestContext, VcpuHvmContext};
use crate::error::{XenError, XenResult};
use crate::raw::{hypercall, nr};
use crate::types::Mfn;

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

/// `VCPUOP_initialise` of a PV vCPU: Xen copies `ctx` (registers, virtual
/// IDT, GDT frames, kernel stack, callbacks, `cr3`); the vCPU stays down
/// until [`up`]. Xen refuses a vCPU that is already initialised (`EEXIST`).
///
/// # Safety
/// Once brought up, the vCPU runs at `ctx.user_regs.rip` on the stack at
/// `rsp` with the page tables of `ctrlreg[3]`, and Xen later jumps to the
/// trap table's and callbacks' addresses: each must be code that expects
/// exactly that state, the stack must belong to that vCPU alone for as
/// long as it lives, and the GDT frames must stay reserved for it (Xen
/// holds a type reference: they are never mapped writable again).
pub unsafe fn initialise_pv(vcpu: u32, ctx: &VcpuGuestContext) -> XenResult<()> {
    // SAFETY: `ctx` is a readable `struct vcpu_guest_context`, copied by
    // Xen during the call; the caller vouches for what it names.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::VCPU_OP }>(
            cmd::INITIALISE.into(),
            vcpu.into(),
            ctx as *const VcpuGuestContext as u64,
            0,
            0,
        )
    })
    .map(drop)
}

/// `VCPUOP_initialise` of an HVM/PVH vCPU with a `struct vcpu_hvm_context`
/// (here: started in long mode).
///
/// # Safety
/// As for [`initialise_pv`]: once up, the vCPU runs at `rip` on the stack
/// at `rsp` with the page tables at `cr3`, which must be code, a stack of
/// its own and page tables that stay valid for as long as it lives.
pub unsafe fn initialise_hvm(vcpu: u32, ctx: &VcpuHvmContext) -> XenResult<()> {
    // SAFETY: `ctx` is a readable `struct vcpu_hvm_context`, copied by Xen
    // during the call; the caller vouches for what it names.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::VCPU_OP }>(
            cmd::INITIALISE.into(),
            vcpu.into(),
            ctx as *const VcpuHvmContext as u64,
            0,
            0,
        )
    })
    .map(drop)
}

/// `VCPUOP_up`: lets an initialised vCPU run (`EINVAL` if it never was).
/// One taken down with [`down`] goes on after its own `down` call.
pub fn up(vcpu: u32) -> XenResult<()> {
    // SAFETY: the command takes no argument struct.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::VCPU_OP }>(cmd::UP.into(), vcpu.into(), 0, 0, 0)
    })
    .map(drop)
}

/// `VCPUOP_down`: stops `vcpu` (called by the vCPU itself, it returns when
/// the vCPU is brought up again).
pub fn down(vcpu: u32) -> XenResult<()> {
    // SAFETY: the command takes no argument struct.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::VCPU_OP }>(cmd::DOWN.into(), vcpu.into(), 0, 0, 0)
    })
    .map(drop)
}

/// `VCPUOP_is_up`: whether `vcpu` runs; `ENOENT` beyond the domain's vCPUs.
pub fn is_up(vcpu: u32) -> XenResult<bool> {
    // SAFETY: the command takes no argument struct.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::VCPU_OP }>(cmd::IS_UP.into(), vcpu.into(), 0, 0, 0)
    })
    .map(|r| r != 0)
}

/// `VCPUOP_register_vcpu_info`: from now on Xen keeps `vcpu`'s
/// `struct vcpu_info` at byte `offset` of `frame` (copying what it had),
/// instead of in the shared info page. Only for the calling vCPU or one
/// that is down; only once per vCPU (`EBUSY`/`EINVAL` after).
///
/// # Safety
/// Kind 1 (see `docs/unsafe-boundary.md`): `frame` must be a frame of this
/// domain reserved for this from the call on, for as long as the domain
/// lives: never freed, reused, ballooned out or granted, never reached
/// through a `&mut`, and the `vcpu_info` in it read and written only as
/// atomics, since Xen writes it concurrently.
pub unsafe fn register_vcpu_info(vcpu: u32, frame: Mfn, offset: u32) -> XenResult<()> {
    let mut arg = VcpuRegisterVcpuInfo { mfn: frame.0, offset, rsvd: 0 };
    // SAFETY: `arg` is a `struct vcpu_register_vcpu_info`; the caller
    // reserves the frame for Xen.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::VCPU_OP }>(
            cmd::REGISTER_VCPU_INFO.into(),
            vcpu.into(),
            ptr_mut(&mut arg),
            0,
            0,
        )
    })
    .map(drop)
}
