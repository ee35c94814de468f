//! Page-table operations of a PV guest.

use crate::error::{XenError, XenResult};
use crate::raw::{hypercall, nr};

/// Replaces the page-table entry that maps `va` with `pte` (a machine
/// frame with `abi::xen::pte` bits), flushing as `flags` (`uvmf::*`) says.
///
/// # Safety
/// Whatever `va` mapped before is gone (or changes) after the call: no
/// live Rust reference may point into that page, and the new frame must be
/// one the guest may map with those rights.
pub unsafe fn update_va_mapping(va: usize, pte: u64, flags: u64) -> XenResult<()> {
    // SAFETY: the caller guarantees the remap keeps the guest's memory sound.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::UPDATE_VA_MAPPING }>(va as u64, pte, flags, 0, 0)
    })
    .map(drop)
}
