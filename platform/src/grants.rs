//! Grant tables as the kernel sees them, in either mode: the table's
//! [`Hypervisor`](grant_tables::Hypervisor) ([`XenGrants`]: PV maps Xen's
//! table frames in the vmap region, PVH has Xen put them into its physical
//! space), the table unmapped across a suspend ([`Suspended`]), pages other
//! domains grant us, mapped ([`Mapping`]), and checked grant copies
//! ([`copy`]). The pages this domain grants are
//! [`crate::shared_pages`]'s.
//!
//! The code is in `pv/grants.rs`, which takes the PVH paths where they
//! differ (`pvh/grants.rs` has the guest-frame ranges).

pub use crate::pv::grants::{copy, Mapping, Suspended, XenGrants};
