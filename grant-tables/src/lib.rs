//! Xen grant tables, as pure logic: how this domain lets another map or
//! copy one of its pages, and takes the page back safely.
//!
//! - [`protocol`]: publishing and revoking an entry on memory Xen shares
//!   (v1 and v2), in the order `grant_table.h` demands; the revoke refuses
//!   while the peer has the page mapped.
//! - [`refs`]: the reference allocator, with batched reservations.
//! - [`table`]: set-up, growth up to Xen's maximum, grant/revoke, and the
//!   quarantine of pages whose grant could not be revoked. Generic over
//!   [`Hypervisor`], which the kernel implements with hypercalls and the
//!   tests with a fake.
//! - [`copy`]: batched `GNTTABOP_copy`, cut at page boundaries.
//!
//! No unsafe code: the kernel maps the frames and hands the entries over
//! as slices of atomics (`platform/src/pv/grants.rs`).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod copy;
pub mod error;
pub mod protocol;
pub mod refs;
pub mod table;

#[cfg(test)]
mod fake;

pub use copy::{CopyBatch, CopyError, Page};
pub use error::GrantError;
pub use refs::Reservation;
pub use table::{Entries, GrantTable, Hypervisor, Stats, Version};
