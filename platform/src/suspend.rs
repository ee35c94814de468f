//! Suspend for `xl save` and `xl migrate`, in either mode: the hypercall
//! and what the domain comes back to ([`Outcome`]). The code is in
//! `pv/suspend.rs` (PVH refuses for now: docs/migration.md).

pub use crate::pv::suspend::{suspend, Outcome};
