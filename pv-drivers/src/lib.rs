//! Xen PV frontends. Everything here is safe code generic over small
//! traits for the hypervisor side, so the same logic runs in the guest and
//! under `cargo test` against fake backends:
//!
//! - [`xenbus`]: frontend devices in XenStore and their state machine.
//! - [`ring`]: Xen's shared request/response rings (`io/ring.h`).
#![cfg_attr(not(any(test, feature = "fake")), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod blkfront;
pub mod env;
pub mod netfront;
pub mod ring;
pub mod xenbus;
