//! Typed wrappers: one function per hypercall operation the guest uses.
//!
//! Each wrapper owns the argument struct Xen reads or writes, passes its
//! address for the duration of the call, and maps the result to [`XenError`].
//!
//! # Which wrappers are safe
//! A wrapper is a safe `fn` only if Xen, during and after the call, touches
//! no guest memory but
//! - the argument structs and buffers the wrapper owns or borrows, for the
//!   duration of the call (Rust's borrow rules already make that sound), or
//! - memory that is Xen's own and that the guest sees only as atomics
//!   (shared info, grant table frames), or numbers Xen validates (ports,
//!   domain ids, vCPU ids).
//!
//! Everything else is an `unsafe fn` whose `# Safety` section says what
//! the caller vouches for:
//! - calls after which Xen (or another domain) *keeps* writing a frame the
//!   caller names: [`event_channel::init_control`],
//!   [`event_channel::expand_array`];
//! - calls that change this guest's page tables or the frames behind its
//!   pfns: [`mmu::update_va_mapping`], [`mmu::mmu_update`],
//!   [`mmu::mmuext_op`], [`memory::decrease_reservation`],
//!   [`memory::populate_physmap`], [`grant_table::map_grant_refs`] (and
//!   the single-op forms), [`grant_table::unmap_grant_refs`],
//!   [`multicall::multicall`];
//! - calls through which Xen writes caller-named guest frames:
//!   [`grant_table::copy`];
//! - calls that put a Xen page at a caller-named guest frame (PVH):
//!   [`hvm::add_to_physmap`];
//! - calls that make Xen jump to a caller-named address:
//!   [`arch::set_trap_table`], [`arch::register_callback`].
//!
//! `docs/unsafe-boundary.md` has the whole list with the reasoning.

pub mod arch;
pub mod console;
pub mod event_channel;
pub mod grant_table;
pub mod hvm;
pub mod memory;
pub mod mmu;
pub mod multicall;
pub mod sched_op;
pub mod vcpu;
pub mod version;

pub use console::write as console_io_write;

use crate::abi::start_info::c_str;
use crate::error::{XenError, XenResult};
use crate::raw::hypercall;

pub(crate) fn ptr<T>(p: &T) -> u64 {
    p as *const T as u64
}

pub(crate) fn ptr_mut<T>(p: &mut T) -> u64 {
    p as *mut T as u64
}

/// A NUL-terminated string Xen filled into a fixed buffer.
#[derive(Clone, Copy)]
pub struct FixedStr<const N: usize>(pub [u8; N]);

impl<const N: usize> FixedStr<N> {
    pub fn as_str(&self) -> &str {
        c_str(&self.0)
    }
}

impl<const N: usize> core::fmt::Display for FixedStr<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> core::fmt::Debug for FixedStr<N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A hypercall number Xen leaves unimplemented (between `hypfs_op` and the
/// arch range); for tests of the error path (Xen answers `ENOSYS`).
pub fn unimplemented_hypercall() -> XenResult<u64> {
    // SAFETY: entry 47 of the hypercall page only returns -ENOSYS.
    XenError::from_ret(unsafe { hypercall::<47>(0, 0, 0, 0, 0) })
}
