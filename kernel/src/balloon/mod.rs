//! The balloon driver: follows `memory/target` (set by `xl mem-set`) by
//! giving pages back to Xen or taking them back. The policy is here
//! (`plan.rs`: which runs to give or take, pure and host-tested;
//! `driver.rs`: the XenStore watch and the steps); the mechanism that unmaps
//! frames and changes the reservation is the platform's
//! (`platform/src/memory/balloon.rs` over `platform::pv::mm`).

pub mod plan;

#[cfg(target_os = "none")]
mod driver;
#[cfg(target_os = "none")]
pub use driver::*;
