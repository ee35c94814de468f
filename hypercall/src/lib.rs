//! The Xen x86-64 paravirtual ABI, as seen from a guest kernel.
//!
//! - [`abi`]: `#[repr(C)]` copies of Xen's public interface structs
//!   (`xen/include/public/`), each with size and offset assertions. Fields of
//!   memory that Xen or another domain writes concurrently are atomics, so a
//!   shared reference to such a struct is sound and `&mut` never exists.
//! - [`raw`]: the hypercall instruction sequence through the hypercall page.
//! - [`ops`]: typed wrappers, one per hypercall family, returning [`XenError`].
//! - [`trace`]: optional tracing of every hypercall (`trace=hypercalls`).
//! - [`types`]: numbers that mean something: [`Pfn`], [`Mfn`], [`EvtchnPort`], [`DomId`].
#![cfg_attr(not(test), no_std)]

pub mod abi;
pub mod error;
pub mod ops;
pub mod raw;
pub mod trace;
pub mod types;

pub use error::{XenError, XenResult};
pub use types::{DomId, EvtchnPort, FrameRange, MachineAddr, Mfn, Pfn, PAGE_SHIFT, PAGE_SIZE};
