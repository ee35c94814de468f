//! `app=blk`: every attached disk driven through blkfront (`run.rs`), with
//! a pattern anyone can recompute (`pattern.rs`, host-tested). The block
//! service it uses (blkfront's kernel environment, the disks' hotplug) is
//! the library's: `kernel::blk`.

pub mod pattern;
#[cfg(target_os = "none")]
mod run;
#[cfg(target_os = "none")]
mod smp;

#[cfg(target_os = "none")]
pub use run::run;
