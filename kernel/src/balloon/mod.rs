//! The balloon driver: follows `memory/target` (set by `xl mem-set`) by
//! giving pages back to Xen or taking them back. The policy is here
//! (`plan.rs`: which runs to give or take, pure and host-tested;
//! `driver.rs`: the XenStore watch and the steps); the mechanism is the
//! platform's (`platform::balloon_out`/`balloon_in`, through the back end:
//! PV unmaps frames and keeps the P2M and M2P true, PVH gives guest frames
//! back by number). Around a suspend (`suspend.rs`, with `recent.rs`'s
//! runs of pfns): the pages ballooned in since the last one are logged
//! for a live migration's last round, and in a new domain the pages given
//! back meanwhile are given back again (docs/migration.md).

pub mod plan;
pub mod recent;

#[cfg(target_os = "none")]
mod driver;
#[cfg(target_os = "none")]
mod suspend;
#[cfg(target_os = "none")]
pub use driver::*;
#[cfg(target_os = "none")]
pub use suspend::{after_suspend, before_suspend};
