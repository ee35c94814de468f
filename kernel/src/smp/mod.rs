//! Several vCPUs (issue 21). vCPU 0 runs the app as it always did; [`start`]
//! brings up every other vCPU the domain has, each with its own stack,
//! `vcpu_info`, FIFO control block, one-shot timer, an IPI port and a kick
//! port for [`lock::PollLock`]. A secondary vCPU then waits in its own
//! loop (blocked in Xen) for work: calls run from its IPI handler
//! ([`call_irq`]: short, upcall context, e.g. a TLB flush) and tasks run
//! from its loop ([`run_task`]: may block, sleep, take locks).
//!
//! An app that never calls [`start`] keeps the other vCPUs down: nothing
//! changes for it.
//!
//! The unsafe half (contexts, stacks, registrations) is
//! `platform::smp`; see docs/smp.md.

pub mod hotplug;
pub mod lock;
#[cfg(target_os = "none")]
mod vcpus;
#[cfg(target_os = "none")]
pub use vcpus::*;
