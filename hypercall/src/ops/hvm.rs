//! `hvm_op` parameters and `XENMEM_add_to_physmap`: what a PVH guest uses
//! where a PV guest reads `start_info` and maps frames by machine number.
//!
//! Soundness: reading or setting a parameter passes a struct the wrapper
//! owns. Setting `HVM_PARAM_CALLBACK_IRQ` makes Xen inject a vector, which
//! is only as sound as the IDT entry behind it; that is the caller's IDT
//! (itself built through unsafe code), so `set_param` stays safe for the
//! parameters it accepts and refuses the others. `add_to_physmap` replaces
//! the page at a guest frame with a Xen page, so it is `unsafe`.

use super::ptr;
use crate::abi::hvm::{hvmop, param, XenAddToPhysmap, XenHvmParam, XENMEM_ADD_TO_PHYSMAP};
use crate::error::{XenError, XenResult};
use crate::raw::{hypercall, nr};
use crate::types::{DomId, Pfn};

/// `HVMOP_get_param` on this domain.
pub fn get_param(index: u32) -> XenResult<u64> {
    let mut arg = XenHvmParam { domid: DomId::SELF.0, pad: 0, index, value: 0 };
    // SAFETY: `arg` is a live xen_hvm_param Xen reads and writes during the call.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::HVM_OP }>(hvmop::GET_PARAM.into(), super::ptr_mut(&mut arg), 0, 0, 0)
    })?;
    Ok(arg.value)
}

/// `HVMOP_set_param` on this domain, for [`param::CALLBACK_IRQ`] only (the
/// other parameters a guest may set name frames or ports: not needed here).
pub fn set_callback_irq(value: u64) -> XenResult<()> {
    let arg = XenHvmParam { domid: DomId::SELF.0, pad: 0, index: param::CALLBACK_IRQ, value };
    // SAFETY: `arg` is a readable xen_hvm_param; the callback parameter
    // only says how Xen signals pending events.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::HVM_OP }>(hvmop::SET_PARAM.into(), ptr(&arg), 0, 0, 0)
    })
    .map(|_| ())
}

/// `XENMEM_add_to_physmap`: makes page `idx` of `space` (`XENMAPSPACE_*`)
/// appear at guest frame `gpfn`. The memory that was at `gpfn` is gone
/// (Xen frees it) and Xen writes the new page whenever it likes.
///
/// # Safety
/// Nothing in Rust may refer to the old contents of `gpfn`, and the page
/// must afterwards only be reached through atomics (Xen writes it).
pub unsafe fn add_to_physmap(space: u32, idx: u64, gpfn: Pfn) -> XenResult<()> {
    let arg = XenAddToPhysmap { domid: DomId::SELF.0, size: 0, space, idx, gpfn: gpfn.0 };
    // SAFETY: `arg` is readable during the call; the caller vouches for the frame.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::MEMORY_OP }>(XENMEM_ADD_TO_PHYSMAP.into(), ptr(&arg), 0, 0, 0)
    })
    .map(|_| ())
}
