//! Why a grant operation failed: always an error value, never a panic.

use core::fmt;
use hypercall::abi::grant_table::GrantRef;
use hypercall::ops::grant_table::GnttabError;
use hypercall::{Mfn, XenError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantError {
    /// A `grant_table_op` failed.
    Hypervisor { op: &'static str, error: GnttabError },
    /// The guest could not map (or unmap) frames Xen returned.
    Mapping { what: &'static str, error: XenError },
    /// Every reference is in use and the table is at Xen's maximum size.
    TableFull { wanted: u32, free: u32, capacity: u32 },
    /// The reservation has no references left.
    ReservationEmpty,
    /// Another domain still has the page mapped (`GTF_reading`/
    /// `GTF_writing` in `flags`): the grant stays, the page is not reusable.
    InUse { gref: GrantRef, flags: u16 },
    /// The reference is not one this table granted (free, reserved for the
    /// toolstack, held in a reservation, or out of range).
    NotGranted(GrantRef),
    /// A v1 entry holds 32-bit frame numbers.
    FrameTooLarge(Mfn),
    /// The version cannot change while grants are active.
    GrantsActive { active: u32 },
    /// The page set has no page `index`.
    NoSuchPage { index: usize },
}

impl fmt::Display for GrantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrantError::Hypervisor { op, error } => write!(f, "{op}: {error}"),
            GrantError::Mapping { what, error } => write!(f, "{what}: {error}"),
            GrantError::TableFull { wanted, free, capacity } => write!(
                f,
                "grant table full: {wanted} references wanted, {free} free of {capacity} at Xen's maximum size"
            ),
            GrantError::ReservationEmpty => f.write_str("the reservation is used up"),
            GrantError::InUse { gref, flags } => write!(
                f,
                "grant {gref} is still mapped by its peer (flags {flags:#x}); the page stays out of use"
            ),
            GrantError::NotGranted(r) => write!(f, "grant {r} is not an active grant of this table"),
            GrantError::FrameTooLarge(m) => write!(f, "frame {m} does not fit a v1 grant entry"),
            GrantError::GrantsActive { active } => {
                write!(f, "cannot change the table version: {active} grants active")
            }
            GrantError::NoSuchPage { index } => write!(f, "the page set has no page {index}"),
        }
    }
}
