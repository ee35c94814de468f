//! `memory_op` sub-operations.

use super::ptr;
use crate::abi::xen::xenmem;
use crate::error::{XenError, XenResult};
use crate::raw::{hypercall, nr};
use crate::types::DomId;

/// Pages currently allocated to `dom`.
pub fn current_reservation(dom: DomId) -> XenResult<u64> {
    let d = dom.0;
    // SAFETY: the argument is a readable `domid_t`.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::MEMORY_OP }>(xenmem::CURRENT_RESERVATION.into(), ptr(&d), 0, 0, 0)
    })
}

/// The most pages `dom` may have.
pub fn maximum_reservation(dom: DomId) -> XenResult<u64> {
    let d = dom.0;
    // SAFETY: the argument is a readable `domid_t`.
    XenError::from_ret(unsafe {
        hypercall::<{ nr::MEMORY_OP }>(xenmem::MAXIMUM_RESERVATION.into(), ptr(&d), 0, 0, 0)
    })
}
